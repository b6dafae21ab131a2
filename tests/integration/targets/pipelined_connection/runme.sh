#!/usr/bin/env bash
# Connection handling of the pipelined_* modules through ansible-playbook and ad-hoc ansible:
# forks over several inventory aliases, delegate_to, become with sudo, and every error.
set -euo pipefail

config=../../integration_config.yml
inventory=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["sftp_fixture_inventory"])' "$config")

# A real unprivileged user with passwordless sudo on the sshd fixture (needs root).
# tools/run_integration.py writes the inventory into <repository>/.work/integration.
repo_root=$(cd "$(dirname "$inventory")/../.." && pwd)
test -f "$repo_root/tests/fixtures/sshd.py" || { echo "no test fixtures under $repo_root" >&2; exit 1; }
PYTHONPATH="$repo_root" python -c 'from tests.fixtures.sshd import ensure_user; ensure_user("pstest")'

ansible-playbook -i "$inventory" -e "@$config" -e pstest_user=pstest --forks 6 connection.yml "$@"

# Ad-hoc: the module runs through its action plugin from the ansible command line too.
workdir=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["sftp_fixture_workdir"])' "$config")
mkdir -p "$workdir/adhoc_src" && echo adhoc > "$workdir/adhoc_src/one.txt"
ansible -i "$inventory" sshd_fixture -m pipelined.sftp.pipelined_copy \
  -a "src=$workdir/adhoc_src/ dest={{ sftp_fixture_remote_root }}/adhoc" "$@" | tee "$workdir/adhoc.out"
grep -q 'CHANGED' "$workdir/adhoc.out"
ansible -i "$inventory" sshd_fixture -m pipelined.sftp.pipelined_copy \
  -a "src=$workdir/adhoc_src/ dest={{ sftp_fixture_remote_root }}/adhoc" "$@" | tee "$workdir/adhoc.out"
grep -q 'SUCCESS' "$workdir/adhoc.out"
ansible -i "$inventory" sshd_fixture -m pipelined.sftp.pipelined_remove \
  -a "path={{ sftp_fixture_remote_root }}/adhoc" "$@"
