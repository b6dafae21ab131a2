"""Each module's argument spec matches its documentation (as ansible-doc renders it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.pipelined.sftp.plugins.module_utils import argspecs
from ansible_collections.pipelined.sftp.plugins.plugin_utils.action_base import result_counts
from ansible_collections.pipelined.sftp.plugins.plugin_utils.report import Report

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".work" / "collections"
ANSIBLE_DOC = Path(sys.executable).parent / "ansible-doc"

SPECS = {
    "pipelined_copy": argspecs.COPY_ARGUMENT_SPEC,
    "pipelined_fetch": argspecs.FETCH_ARGUMENT_SPEC,
    "pipelined_remove": argspecs.REMOVE_ARGUMENT_SPEC,
}
EXTRA_RESULT_KEYS = {
    "pipelined_copy": {"src", "dest"},
    "pipelined_fetch": {"src", "dest"},
    "pipelined_remove": {"path"},
}


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
    env.setdefault("HOME", str(ROOT / ".work" / "home"))
    env["ANSIBLE_DEPRECATION_WARNINGS"] = "false"
    return env


@pytest.fixture(scope="module")
def docs() -> dict[str, Any]:
    names = [f"pipelined.sftp.{name}" for name in SPECS]
    out = subprocess.run(
        [str(ANSIBLE_DOC), "--json", *names],
        check=True,
        capture_output=True,
        text=True,
        env=ansible_env(),
        timeout=120,
    )
    loaded: dict[str, Any] = json.loads(out.stdout)
    return {name.rsplit(".", 1)[1]: value for name, value in loaded.items()}


@pytest.mark.parametrize("module", sorted(SPECS))
def test_options_match_argument_spec(docs: dict[str, Any], module: str) -> None:
    options = docs[module]["doc"]["options"]
    spec = SPECS[module]
    assert set(options) == set(spec)
    for name, rule in spec.items():
        doc = options[name]
        assert doc.get("type", "str") == rule.get("type", "str"), name
        assert bool(doc.get("required", False)) == bool(rule.get("required", False)), name
        assert doc.get("default") == rule.get("default"), name
        assert doc.get("choices") == rule.get("choices"), name
        assert doc.get("elements") == rule.get("elements"), name
        assert doc.get("aliases", []) == rule.get("aliases", []), name
        assert doc.get("description"), name
        if rule.get("required"):
            assert "default" not in rule, name


@pytest.mark.parametrize("module", sorted(SPECS))
def test_documentation_is_complete(docs: dict[str, Any], module: str) -> None:
    doc = docs[module]["doc"]
    assert doc["module"] == module
    assert doc["version_added"] == "0.1.0"
    assert doc["author"] and doc["short_description"] and doc["description"]
    attributes = doc["attributes"]
    for attribute in ("check_mode", "diff_mode", "platform", "action", "become", "delegation"):
        assert attribute in attributes, attribute
    assert attributes["check_mode"]["support"] == "full"
    assert attributes["action"]["support"] == "full"
    assert docs[module]["examples"].strip()


@pytest.mark.parametrize("module", sorted(SPECS))
def test_return_documents_every_result_key(docs: dict[str, Any], module: str) -> None:
    returned = docs[module]["return"]
    expected = set(result_counts(Report())) | EXTRA_RESULT_KEYS[module]
    assert "skipped" not in returned  # Ansible would read it as a skipped task
    assert set(returned) == expected
    for key, value in returned.items():
        assert value["description"] and value["returned"] and value["type"], key


@pytest.mark.parametrize("module", sorted(SPECS))
def test_module_run_on_a_target_fails_with_one_sentence(tmp_path: Path, module: str) -> None:
    module_args: dict[str, Any] = {"src": "/a", "dest": "/b"}
    if module == "pipelined_remove":
        module_args = {"path": ["/c"]}
    args = {"ANSIBLE_MODULE_ARGS": module_args}
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps(args))
    env = ansible_env()
    env["PYTHONPATH"] = str(COLLECTIONS)
    out = subprocess.run(
        [sys.executable, str(ROOT / "plugins" / "modules" / f"{module}.py"), str(args_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    result = json.loads(out.stdout)
    assert out.returncode == 1
    assert result["failed"] is True
    assert result["msg"] == (
        f"The {module} module runs on the controller through its action plugin and cannot be "
        f"executed on a target; call it as a task (pipelined.sftp.{module}) instead."
    )


def test_tuning_defaults_match_the_core() -> None:
    """The modules' documented defaults are the core's own defaults."""
    from ansible_collections.pipelined.sftp.plugins.module_utils import argspecs
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import (
        RemoveOptions,
        TransferOptions,
    )

    transfer, remove = TransferOptions(), RemoveOptions()
    for spec in (argspecs.COPY_ARGUMENT_SPEC, argspecs.FETCH_ARGUMENT_SPEC):
        assert spec["max_requests"]["default"] == transfer.max_requests
        assert spec["block_size"]["default"] == transfer.block_size
        assert spec["connections"]["default"] == transfer.connections
    assert argspecs.REMOVE_ARGUMENT_SPEC["max_requests"]["default"] == remove.max_requests
