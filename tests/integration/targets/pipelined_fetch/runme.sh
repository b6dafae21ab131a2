#!/usr/bin/env bash
# pipelined_fetch through ansible-playbook against the test bed's servers.
set -euo pipefail

config=../../integration_config.yml
inventory=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["sftp_fixture_inventory"])' "$config")

ansible-playbook -i "$inventory" -e "@$config" fetch.yml "$@"
