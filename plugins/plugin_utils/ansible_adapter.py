"""Map a task's Ansible connection and become plugins to the core's ConnectionSpec / BecomeSpec.

ansible-core resolves every connection option (inventory, ansible.cfg, command line,
delegate_to) before an action runs, without connecting; this module only reads the resolved
values. It never prompts and never puts a secret into a message.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import (
    BecomeSpec,
    ConnectionSpec,
    HostKeyPolicy,
)

OptionGetter = Callable[[str], Any]

SSH_CONNECTIONS = ("ansible.builtin.ssh", "ssh")
PARAMIKO_CONNECTIONS = ("ansible.builtin.paramiko_ssh", "paramiko_ssh", "paramiko")
ASYNCSSH_CONNECTIONS = ("pipelined.sftp.asyncssh",)
SUDO_BECOME = ("ansible.builtin.sudo", "sudo")


class AdapterError(ValueError):
    """A connection or become setting the transfer core cannot honour (one sentence)."""


@dataclass(frozen=True)
class SshArgs:
    """The ssh command-line options pipelined.sftp understands, first occurrence winning."""

    port: int | None = None
    user: str | None = None
    identity_files: tuple[str, ...] = ()
    known_hosts: str | None = None
    strict_host_key_checking: HostKeyPolicy | None = None
    jump: str | None = None
    connect_timeout: float | None = None
    keepalive_interval: float | None = None
    ciphers: tuple[str, ...] | None = None
    proxy_command: str | None = None


_STRICT_VALUES: dict[str, HostKeyPolicy] = {
    "yes": "strict",
    "ask": "strict",
    "true": "strict",
    "accept-new": "accept-new",
    "no": "off",
    "off": "off",
    "false": "off",
}

# Single-letter ssh flags that take an argument; the ones we read are mapped to option names.
_FLAGS_WITH_ARG = "BbcDEeFIiJLlmOoPpQRSWw"
_FLAG_TO_OPTION = {
    "p": "port",
    "l": "user",
    "i": "identityfile",
    "J": "proxyjump",
    "c": "ciphers",
}


def _ssh_options(words: Sequence[str]) -> Iterable[tuple[str, str]]:
    """Yield (lower-case option name, value) pairs from ssh command-line words."""
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not word.startswith("-") or len(word) < 2:
            continue
        # Boolean flags may be grouped (-4Cq); the first flag taking an argument ends the group.
        for position in range(1, len(word)):
            flag = word[position]
            if flag not in _FLAGS_WITH_ARG:
                continue
            value = word[position + 1 :]
            if not value:
                if index >= len(words):
                    return
                value = words[index]
                index += 1
            if flag == "o":
                # As OpenSSH: the keyword ends at the first '=' or whitespace.
                value = value.strip()
                cut = min((i for i in (value.find("="), value.find(" ")) if i >= 0), default=-1)
                if cut < 0:
                    continue
                yield value[:cut].strip().lower(), value[cut + 1 :].strip().lstrip("=").strip()
            elif flag in _FLAG_TO_OPTION:
                yield _FLAG_TO_OPTION[flag], value
            break


def _number(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise AdapterError(f"ssh option {name}={value!r} is not a number.") from None


def parse_ssh_args(*arg_strings: str | None) -> SshArgs:
    """Read the options pipelined.sftp understands from ssh argument strings.

    As with OpenSSH, the first value given for an option wins, so pass the strings in the
    order ansible.builtin.ssh puts them on the command line: ssh_args, ssh_common_args,
    ssh_extra_args. IdentityFile accumulates.
    """
    seen: dict[str, str] = {}
    identities: list[str] = []
    for text in arg_strings:
        if not text:
            continue
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise AdapterError(f"ssh arguments {text!r} cannot be parsed: {exc}.") from None
        for key, value in _ssh_options(words):
            if key == "identityfile":
                identities.append(os.path.expanduser(value))
            else:
                seen.setdefault(key, value)

    strict: HostKeyPolicy | None = None
    if "stricthostkeychecking" in seen:
        value = seen["stricthostkeychecking"].lower()
        if value not in _STRICT_VALUES:
            raise AdapterError(f"ssh option StrictHostKeyChecking={value!r} is not understood.")
        strict = _STRICT_VALUES[value]
    known_hosts = None
    if seen.get("userknownhostsfile"):
        known_hosts = os.path.expanduser(shlex.split(seen["userknownhostsfile"])[0])
    port = None
    if "port" in seen:
        port = int(_number("Port", seen["port"]))
    jump = seen.get("proxyjump")
    if jump is not None and jump.lower() == "none":
        jump = None
    proxy_command = seen.get("proxycommand")
    if proxy_command is not None and proxy_command.lower() == "none":
        proxy_command = None
    ciphers = None
    if seen.get("ciphers"):
        ciphers = tuple(c for c in seen["ciphers"].split(",") if c)
    return SshArgs(
        port=port,
        user=seen.get("user"),
        identity_files=tuple(identities),
        known_hosts=known_hosts,
        strict_host_key_checking=strict,
        jump=jump,
        connect_timeout=(
            _number("ConnectTimeout", seen["connecttimeout"]) if "connecttimeout" in seen else None
        ),
        keepalive_interval=(
            _number("ServerAliveInterval", seen["serveraliveinterval"])
            if "serveraliveinterval" in seen
            else None
        ),
        ciphers=ciphers,
        proxy_command=proxy_command,
    )


def _parse_jump_host(text: str) -> tuple[str | None, str, int]:
    """Split one ProxyJump element ([user@]host[:port] or ssh://[user@]host[:port])."""
    original = text
    if text.startswith("ssh://"):
        text = text[len("ssh://") :].rstrip("/")
    user: str | None = None
    if "@" in text:
        user, _at, text = text.rpartition("@")
    port = 22
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise AdapterError(f"jump host {original!r} has an unclosed '['.")
        if rest.startswith(":"):
            port = int(_number("jump port", rest[1:]))
    elif text.count(":") == 1:
        host, _colon, port_text = text.partition(":")
        port = int(_number("jump port", port_text))
    else:
        host = text
    if not host:
        raise AdapterError(f"jump host {original!r} names no host.")
    return user or None, host, port


def jump_chain(value: str, target: ConnectionSpec) -> ConnectionSpec | None:
    """Turn a ProxyJump value (comma-separated hops, first hop first) into the spec chain.

    Each hop reuses the target's keys, passphrase, known_hosts, host key policy and timeout;
    as with OpenSSH, a hop's user is the one written in the hop (else the local default) and
    the target's password is never sent to a hop.
    """
    hop: ConnectionSpec | None = None
    for element in value.split(","):
        element = element.strip()
        if not element:
            continue
        user, host, port = _parse_jump_host(element)
        hop = ConnectionSpec(
            host=host,
            port=port,
            user=user,
            client_keys=target.client_keys,
            passphrase=target.passphrase,
            known_hosts=target.known_hosts,
            host_key_policy=target.host_key_policy,
            jump=hop,
            connect_timeout=target.connect_timeout,
            keepalive_interval=target.keepalive_interval,
        )
    return hop


def _reader(connection: Any) -> OptionGetter:
    """get_option that answers None for options the plugin does not declare."""

    def get(name: str) -> Any:
        try:
            return connection.get_option(name)
        except KeyError:
            return None

    return get


def connection_name(connection: Any) -> str:
    """The fully qualified name of a connection plugin, for messages."""
    return str(getattr(connection, "ansible_name", None) or getattr(connection, "_load_name", "?"))


def _matches(plugin: Any, names: Sequence[str]) -> bool:
    matches = getattr(plugin, "matches_name", None)
    if callable(matches):
        return bool(matches(list(names)))
    return connection_name(plugin) in names


def connection_spec(connection: Any, inventory_hostname: str) -> ConnectionSpec:
    """Build the ConnectionSpec for the host a task talks to from its connection plugin.

    Reads ansible.builtin.ssh, ansible.builtin.paramiko_ssh and pipelined.sftp.asyncssh
    options; any other connection type is refused with a message naming it.
    """
    name = connection_name(connection)
    get = _reader(connection)
    if _matches(connection, SSH_CONNECTIONS + ASYNCSSH_CONNECTIONS):
        host = get("host")
        args = parse_ssh_args(get("ssh_args"), get("ssh_common_args"), get("ssh_extra_args"))
        if args.proxy_command:
            raise AdapterError(
                f"Host {inventory_hostname} sets ProxyCommand in its ssh arguments, which "
                "pipelined.sftp cannot run; use ProxyJump (-J) instead."
            )
        auto_add = False
    elif _matches(connection, PARAMIKO_CONNECTIONS):
        host = get("remote_addr")
        args = SshArgs()
        if get("proxy_command"):
            raise AdapterError(
                f"Host {inventory_hostname} sets a paramiko proxy_command, which pipelined.sftp "
                "cannot run; use the ssh connection with ProxyJump (-J) instead."
            )
        auto_add = bool(get("host_key_auto_add"))
    else:
        raise AdapterError(
            f"Host {inventory_hostname} uses the {name} connection, but pipelined.sftp needs "
            "an SSH server: set ansible_connection to ssh, paramiko_ssh or pipelined.sftp.asyncssh."
        )
    if not host or host == "inventory_hostname":
        host = inventory_hostname
    if get("private_key"):
        raise AdapterError(
            f"Host {inventory_hostname} gives its private key inline (private_key), which "
            "pipelined.sftp does not support; use private_key_file instead."
        )

    port = get("port") or args.port or 22
    keys: list[str] = []
    key_file = get("private_key_file")
    if key_file:
        keys.append(os.path.expanduser(str(key_file)))
    keys.extend(k for k in args.identity_files if k not in keys)

    policy: HostKeyPolicy
    checking = get("host_key_checking")
    if checking is not None and not checking:
        policy = "off"
    elif args.strict_host_key_checking is not None:
        policy = args.strict_host_key_checking
    elif auto_add:
        policy = "accept-new"
    else:
        policy = "strict"

    timeout = get("timeout")
    if timeout is None:
        timeout = args.connect_timeout if args.connect_timeout is not None else 10.0

    spec = ConnectionSpec(
        host=str(host),
        port=int(port),
        user=get("remote_user") or args.user or None,
        client_keys=tuple(keys),
        passphrase=get("private_key_passphrase") or None,
        password=get("password") or None,
        known_hosts=args.known_hosts,
        host_key_policy=policy,
        connect_timeout=float(timeout),
        keepalive_interval=args.keepalive_interval or 0.0,
        ciphers=args.ciphers,
    )
    if args.jump:
        spec = replace(spec, jump=jump_chain(args.jump, spec))
    return spec


def become_spec(become: Any | None, inventory_hostname: str) -> BecomeSpec | None:
    """Build the BecomeSpec from the task's become plugin (None when become is off)."""
    if become is None:
        return None
    if not _matches(become, SUDO_BECOME):
        raise AdapterError(
            f"Host {inventory_hostname} asks for become method {connection_name(become)}, but "
            "pipelined.sftp supports only sudo."
        )
    get = _reader(become)
    return BecomeSpec(
        user=get("become_user") or "root",
        exe=get("become_exe") or "sudo",
        password=get("become_pass") or None,
    )
