"""Connection and become settings, resolved by real Ansible plugins, mapped to core specs."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import become_loader, connection_loader

from ansible_collections.pipelined.sftp.plugins.plugin_utils.ansible_adapter import (
    AdapterError,
    become_spec,
    connection_spec,
    jump_chain,
    parse_ssh_args,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import ConnectionSpec


def plugin(name: str, variables: dict[str, Any]) -> Any:
    """A connection plugin with its options resolved from host variables, as Ansible does."""
    conn = connection_loader.get(name, PlayContext())
    conn.set_options(var_options=variables)
    return conn


def become(name: str, variables: dict[str, Any]) -> Any:
    plug = become_loader.get(name)
    plug.set_options(var_options=variables)
    return plug


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "ANSIBLE_HOST_KEY_CHECKING",
        "ANSIBLE_SSH_ARGS",
        "ANSIBLE_REMOTE_USER",
        "ANSIBLE_PRIVATE_KEY_FILE",
        "ANSIBLE_REMOTE_PORT",
        "ANSIBLE_SSH_COMMON_ARGS",
    ):
        monkeypatch.delenv(var, raising=False)


def test_ssh_inventory_variables_map_to_spec() -> None:
    conn = plugin(
        "ssh",
        {
            "ansible_host": "10.1.2.3",
            "ansible_port": 2222,
            "ansible_user": "deploy",
            "ansible_ssh_private_key_file": "/keys/id_ed25519",
            "ansible_password": "pw-secret",
            "ansible_ssh_private_key_passphrase": "pp-secret",
            "ansible_ssh_timeout": 7,
        },
    )
    spec = connection_spec(conn, "web1")
    assert (spec.host, spec.port, spec.user) == ("10.1.2.3", 2222, "deploy")
    assert spec.client_keys == ("/keys/id_ed25519",)
    assert spec.password == "pw-secret"
    assert spec.passphrase == "pp-secret"
    assert spec.connect_timeout == 7.0
    assert spec.host_key_policy == "strict"
    assert spec.known_hosts is None
    assert spec.jump is None
    assert "secret" not in repr(spec)


def test_ssh_defaults_use_inventory_hostname_and_port_22() -> None:
    spec = connection_spec(plugin("ssh", {"inventory_hostname": "db7"}), "db7")
    assert (spec.host, spec.port, spec.user) == ("db7", 22, None)
    assert spec.connect_timeout == 10.0
    spec = connection_spec(plugin("ssh", {}), "db8")
    assert spec.host == "db8"


def test_host_key_checking_false_turns_policy_off() -> None:
    conn = plugin("ssh", {"ansible_host": "h", "ansible_host_key_checking": False})
    assert connection_spec(conn, "h").host_key_policy == "off"


def test_known_hosts_and_strict_checking_from_ssh_args() -> None:
    conn = plugin(
        "ssh",
        {
            "ansible_host": "h",
            "ansible_ssh_common_args": (
                "-o UserKnownHostsFile=/tmp/kh -o StrictHostKeyChecking=accept-new"
            ),
            "ansible_ssh_extra_args": "-oStrictHostKeyChecking=no -o ServerAliveInterval=15",
        },
    )
    spec = connection_spec(conn, "h")
    assert spec.known_hosts == "/tmp/kh"
    # OpenSSH keeps the first value given; common args come before extra args.
    assert spec.host_key_policy == "accept-new"
    assert spec.keepalive_interval == 15.0


def test_strict_checking_no_in_extra_args() -> None:
    conn = plugin(
        "ssh", {"ansible_host": "h", "ansible_ssh_extra_args": "-o StrictHostKeyChecking=no"}
    )
    assert connection_spec(conn, "h").host_key_policy == "off"


def test_jump_host_from_dash_j_inherits_keys_and_known_hosts_not_password() -> None:
    conn = plugin(
        "ssh",
        {
            "ansible_host": "10.0.0.9",
            "ansible_user": "app",
            "ansible_password": "pw-secret",
            "ansible_ssh_private_key_file": "/keys/k",
            "ansible_ssh_common_args": "-J ops@bastion:2200 -o UserKnownHostsFile=/kh",
        },
    )
    spec = connection_spec(conn, "web1")
    assert spec.jump is not None
    assert (spec.jump.host, spec.jump.port, spec.jump.user) == ("bastion", 2200, "ops")
    assert spec.jump.client_keys == ("/keys/k",)
    assert spec.jump.known_hosts == "/kh"
    assert spec.jump.password is None
    assert spec.jump.jump is None


def test_proxyjump_chain_first_hop_is_innermost() -> None:
    target = ConnectionSpec(host="t")
    hop = jump_chain("a@first,ssh://b@second:2022,[::1]:2200", target)
    assert hop is not None and (hop.host, hop.port, hop.user) == ("::1", 2200, None)
    assert hop.jump is not None and (hop.jump.host, hop.jump.port, hop.jump.user) == (
        "second",
        2022,
        "b",
    )
    assert hop.jump.jump is not None and hop.jump.jump.host == "first"
    assert hop.jump.jump.jump is None


def test_proxyjump_option_and_none() -> None:
    args = parse_ssh_args('-o "ProxyJump=gw"', "-J other")
    assert args.jump == "gw"
    assert parse_ssh_args("-o ProxyJump=none").jump is None


def test_identity_files_accumulate_after_private_key_file() -> None:
    conn = plugin(
        "ssh",
        {
            "ansible_host": "h",
            "ansible_ssh_private_key_file": "/k1",
            "ansible_ssh_extra_args": "-i /k2 -o IdentityFile=/k3 -i /k1",
        },
    )
    assert connection_spec(conn, "h").client_keys == ("/k1", "/k2", "/k3")


def test_ssh_args_port_and_user_only_when_options_unset() -> None:
    args = "-p 2022 -l fromargs -C -o Ciphers=aes128-gcm@openssh.com,aes128-ctr"
    spec = connection_spec(
        plugin("ssh", {"ansible_host": "h", "ansible_ssh_extra_args": args}), "h"
    )
    assert (spec.port, spec.user) == (2022, "fromargs")
    assert spec.ciphers == ("aes128-gcm@openssh.com", "aes128-ctr")
    spec = connection_spec(
        plugin(
            "ssh",
            {
                "ansible_host": "h",
                "ansible_port": 22,
                "ansible_user": "u",
                "ansible_ssh_extra_args": args,
            },
        ),
        "h",
    )
    assert (spec.port, spec.user) == (22, "u")


def test_grouped_flags_and_unknown_options_are_skipped() -> None:
    args = parse_ssh_args("-4Cq -o ControlMaster=auto -o ControlPersist=60s -vvv -oPort=2200 host")
    assert args.port == 2200
    assert args.jump is None


def test_proxy_command_is_refused_with_host_named() -> None:
    args = "-o 'ProxyCommand=ssh -W %h:%p gw'"
    conn = plugin("ssh", {"ansible_host": "h", "ansible_ssh_common_args": args})
    with pytest.raises(AdapterError, match=r"web1.*ProxyCommand"):
        connection_spec(conn, "web1")


def test_bad_strict_value_is_refused() -> None:
    with pytest.raises(AdapterError, match="StrictHostKeyChecking"):
        parse_ssh_args("-o StrictHostKeyChecking=maybe")


def test_unparsable_ssh_args_are_refused() -> None:
    with pytest.raises(AdapterError, match="cannot be parsed"):
        parse_ssh_args("-o 'unclosed")


def test_inline_private_key_is_refused_without_leaking_it() -> None:
    conn = plugin("ssh", {"ansible_host": "h", "ansible_ssh_private_key": "KEYMATERIAL"})
    with pytest.raises(AdapterError) as info:
        connection_spec(conn, "h")
    assert "KEYMATERIAL" not in str(info.value)


def test_paramiko_options_map_to_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_PARAMIKO_HOST_KEY_AUTO_ADD", "true")
    conn = plugin(
        "paramiko_ssh",
        {"ansible_host": "10.9.9.9", "ansible_port": 2201, "ansible_user": "p"},
    )
    spec = connection_spec(conn, "pm")
    assert (spec.host, spec.port, spec.user) == ("10.9.9.9", 2201, "p")
    assert spec.host_key_policy == "accept-new"


def test_local_connection_is_refused_clearly() -> None:
    with pytest.raises(
        AdapterError, match=r"localhost uses the ansible\.builtin\.local connection"
    ):
        connection_spec(plugin("local", {}), "localhost")


def test_become_sudo_maps_user_and_password() -> None:
    spec = become_spec(
        become("sudo", {"ansible_become_user": "app", "ansible_become_password": "bp-secret"}),
        "h",
    )
    assert spec is not None
    assert (spec.user, spec.exe, spec.password) == ("app", "sudo", "bp-secret")
    assert "bp-secret" not in repr(spec)


def test_become_defaults_to_root_without_password() -> None:
    spec = become_spec(become("sudo", {}), "h")
    assert spec is not None and (spec.user, spec.password) == ("root", None)
    assert become_spec(None, "h") is None


def test_become_other_methods_are_refused() -> None:
    with pytest.raises(AdapterError, match=r"become method ansible\.builtin\.su"):
        become_spec(become("su", {}), "h")
