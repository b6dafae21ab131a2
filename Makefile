# pipelined.sftp — build and test entry points. Every target sets up what it needs on a
# fresh Debian machine with Python 3.11 (see README.md, "Requirements").
#
#   make demo    start the test SSH servers and copy a generated tree through the collection
#   make test    lint + typecheck + unit + sanity + integration (what CI runs)
#   make build   build the collection tarball into .work/build and check its contents

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Interpreter used to create .venv (override: make PYTHON=/path/to/python3.11 venv).
PYTHON ?= $(shell command -v python3.11 || command -v python3)

VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORK := $(CURDIR)/.work
COLLECTIONS := $(WORK)/collections
COLLECTION_DIR := $(COLLECTIONS)/ansible_collections/pipelined/sftp
BUILD_DIR := $(WORK)/build

# ansible and Python find the collection through the symlink made by `make venv`.
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PYTHONPATH := $(CURDIR):$(COLLECTIONS)$(if $(PYTHONPATH),:$(PYTHONPATH))
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# ansible-test runs from the collection path. Its content root is given explicitly because
# the collection directory is a symlink and the kernel reports the resolved working
# directory. HOME points into .work so its pip-bootstrap cache and virtual environments
# (see tools/seed_ansible_test.py) stay inside the checkout.
ANSIBLE_TEST := cd $(COLLECTION_DIR) && env ANSIBLE_TEST_CONTENT_ROOT=$(COLLECTION_DIR) \
	HOME=$(WORK)/home $(VENV)/bin/ansible-test
ANSIBLE_TEST_PYTHON := 3.11

# Sanity tests that cannot run here, each with its reason (see README.md, "Sanity tests").
SANITY_SKIP :=

# Files ruff and mypy look at (besides plugins/).
PY_DIRS := plugins tests tools $(wildcard bench/*.py)

.PHONY: help venv lint typecheck unit sanity integration test demo build changelog clean

help:
	@echo "make demo         start test SSH servers and run the collection against them"
	@echo "make test         lint, typecheck, unit, sanity, integration (what CI runs)"
	@echo "make lint         ruff"
	@echo "make typecheck    mypy (strict on plugins/plugin_utils)"
	@echo "make unit         pytest tests/unit"
	@echo "make sanity       ansible-test sanity (offline, --local)"
	@echo "make integration  ansible-test integration against local SSH servers"
	@echo "make build        ansible-galaxy collection build into .work/build"
	@echo "make changelog    lint changelog fragments"
	@echo "make venv         create .venv from requirements-dev.txt"

venv: $(STAMP) $(COLLECTION_DIR)

$(STAMP): requirements-dev.txt requirements.txt
	@test -x "$(PY)" || "$(PYTHON)" -m venv "$(VENV)"
	"$(PY)" -m pip install --quiet -r requirements-dev.txt -r requirements.txt
	@touch "$@"

$(COLLECTION_DIR):
	@mkdir -p "$(dir $@)"
	ln -sfn "$(CURDIR)" "$@"

lint: venv
	"$(VENV)/bin/ruff" check $(PY_DIRS)

typecheck: venv
	"$(VENV)/bin/mypy" -p ansible_collections.pipelined.sftp.plugins
	"$(VENV)/bin/mypy" --follow-imports=silent tools

# pytest exits 5 when it collected no test: that is a failure here too.
unit: venv
	"$(PY)" -m pytest tests/unit

sanity: venv
	@HOME=$(WORK)/home "$(PY)" tools/seed_ansible_test.py
	$(ANSIBLE_TEST) sanity --local --python $(ANSIBLE_TEST_PYTHON) --color no \
		$(foreach t,$(SANITY_SKIP),--skip-test $(t))

integration: venv
	@HOME=$(WORK)/home "$(PY)" tools/seed_ansible_test.py
	"$(PY)" tools/run_integration.py -- --python $(ANSIBLE_TEST_PYTHON) --color no

changelog: venv
	"$(VENV)/bin/antsibull-changelog" lint

test: lint typecheck unit changelog sanity integration
	@echo "make test: all checks passed"

demo: venv
	"$(PY)" -m tools.demo

build: venv
	@rm -rf "$(BUILD_DIR)" && mkdir -p "$(BUILD_DIR)"
	"$(VENV)/bin/ansible-galaxy" collection build --output-path "$(BUILD_DIR)" "$(CURDIR)"
	"$(PY)" tools/check_tarball.py "$(BUILD_DIR)"/pipelined-sftp-*.tar.gz

clean:
	rm -rf "$(WORK)/build" "$(CURDIR)/tests/output" .mypy_cache .ruff_cache .pytest_cache
