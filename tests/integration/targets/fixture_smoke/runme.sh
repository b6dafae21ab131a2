#!/usr/bin/env bash
# Reach the test bed's SSH servers through the inventory tools/run_integration.py generated.
set -euo pipefail

config=../../integration_config.yml
inventory=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["sftp_fixture_inventory"])' "$config")

# Every fixture host answers ansible's ping over ssh, with host keys checked.
ansible -i "$inventory" sftp_fixtures -m ansible.builtin.ping "$@"

# The same checks as a playbook, plus: a wrong host key must fail closed.
ansible-playbook -i "$inventory" -e "@$config" smoke.yml "$@"
