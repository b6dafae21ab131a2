# Copyright: (c) 2026, pipelined.sftp maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection plugin: run tasks over asyncssh with a persistent connection; files over SFTP."""

# ruff: noqa: E402 - ansible-test wants DOCUMENTATION and EXAMPLES before any import
from __future__ import annotations

DOCUMENTATION = r"""
name: asyncssh
short_description: Run tasks over asyncssh; move files over pipelined SFTP
description:
  - Runs every task of a play over an SSH connection made with asyncssh, with module
    pipelining on by default.
  - Every file Ansible moves (module payloads when not pipelining, M(ansible.builtin.copy),
    M(ansible.builtin.template), M(ansible.builtin.fetch)) goes through the collection's
    pipelined SFTP transfer core.
  - Like C(ControlPersist) for C(ansible.builtin.ssh), a small local process per host keeps
    the connection open between tasks and ends after O(persist_idle_timeout) seconds without
    use. Later tasks, and the collection's modules, reuse it without a new handshake.
  - Inventory variables work as for C(ansible.builtin.ssh) (C(ansible_host), C(ansible_port),
    C(ansible_user), C(ansible_ssh_private_key_file), C(ansible_password),
    C(ansible_ssh_common_args) with C(-J), C(ansible_become_*)).
  - Nothing ever prompts; host keys are checked by default and a mismatch fails closed.
author: pipelined.sftp maintainers (@pipelined)
version_added: 0.1.0
extends_documentation_fragment:
  - pipelined.sftp.ssh_connection
options:
  pipelining:
    description:
      - Send modules to the remote Python on stdin instead of copying them to a file first.
    type: boolean
    default: true
    env:
      - name: ANSIBLE_PIPELINING
    ini:
      - section: defaults
        key: pipelining
      - section: connection
        key: pipelining
    vars:
      - name: ansible_pipelining
      - name: ansible_asyncssh_pipelining
  persistent:
    description:
      - Keep the connection open between tasks in a local background process, reached over
        a unix socket in O(control_path_dir).
      - When false, every task connects anew, in the task's own process.
    type: boolean
    default: true
    env:
      - name: ANSIBLE_ASYNCSSH_PERSISTENT
    ini:
      - section: asyncssh_connection
        key: persistent
    vars:
      - name: ansible_asyncssh_persistent
  persist_idle_timeout:
    description:
      - Seconds a persistent connection stays open without any task using it.
    type: float
    default: 60
    env:
      - name: ANSIBLE_ASYNCSSH_PERSIST_IDLE_TIMEOUT
    ini:
      - section: asyncssh_connection
        key: persist_idle_timeout
    vars:
      - name: ansible_asyncssh_persist_idle_timeout
  control_path_dir:
    description:
      - Private directory (mode 0700) for the persistent connections' unix sockets.
    type: path
    default: ~/.ansible/cp
    env:
      - name: ANSIBLE_ASYNCSSH_CONTROL_PATH_DIR
    ini:
      - section: asyncssh_connection
        key: control_path_dir
    vars:
      - name: ansible_asyncssh_control_path_dir
notes:
  - Privilege escalation works with any become plugin that wraps the command (for example
    C(sudo), with or without a password); the password is sent when the prompt appears.
  - C(ProxyCommand), C(~/.ssh/config) and other ssh options not listed under
    O(ssh_common_args) are not read.
  - As with C(ControlPersist), a running persistent connection is reused by later tasks for
    the same user, host, port, keys, jump hosts and host key settings without
    authenticating again; passwords are not part of that match. Use
    C(meta) V(reset_connection) to drop it.
  - The persistent process copies C(put_file)/C(fetch_file) files itself and keeps up to
    four idle SFTP channels for the next one (it opens one as soon as it has connected), so
    each holds a session and an C(sftp-server) process on the host while it lives; with
    O(persistent=false) channels close after each task.
  - Passwords reach the persistent process through a pipe, never its command line or
    environment. Set E(PIPELINED_SFTP_MUX_LOG) to a file path to keep the process's error
    output for debugging.
"""

EXAMPLES = r"""
# inventory
# [web]
# web1 ansible_host=10.0.0.5 ansible_user=deploy
# [web:vars]
# ansible_connection=pipelined.sftp.asyncssh
# ansible_ssh_common_args='-J bastion.example.com'

- name: Ping over asyncssh
  hosts: web
  connection: pipelined.sftp.asyncssh
  tasks:
    - ansible.builtin.ping:
"""

import dataclasses
import importlib.util
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

_PLUGIN_UTILS = "ansible_collections.pipelined.sftp.plugins.plugin_utils"


def _load_with_bytecode_cache(names: tuple[str, ...]) -> None:
    """Load these plugin_utils modules through Python's own file loader, with cached bytecode.

    Every task runs in a fresh worker process, and Ansible's collection loader compiles a
    collection module from source on each import (about 4 ms here for the four modules a
    command needs), while plugins themselves load from ``__pycache__``. Loaded here first,
    under their usual names, the imports below find them in ``sys.modules``.
    """
    directory = os.path.join(os.path.dirname(os.path.dirname(__file__)), "plugin_utils")
    for name in names:
        fullname = f"{_PLUGIN_UTILS}.{name}"
        path = os.path.join(directory, f"{name}.py")
        if fullname in sys.modules or not os.path.isfile(path):
            continue
        spec = importlib.util.spec_from_file_location(fullname, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[fullname] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[fullname]
            raise


# in dependency order: each module's own imports must already be loaded
_load_with_bytecode_cache(("spec", "mux_proto", "mux_client", "ansible_adapter"))

from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_client as mux
from ansible_collections.pipelined.sftp.plugins.plugin_utils.ansible_adapter import (
    AdapterError,
    become_spec,
    connection_spec,
    jump_chain,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import (
    ConnectionSpec,
)

if TYPE_CHECKING:  # asyncssh loads only when a task connects without the persistent process
    import asyncio

    from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import SSHSession
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.remote_command import (
        RemoteCommand,
    )

display = Display()

_HOST_KEY_POLICIES = ("strict", "accept-new", "off")


class Connection(ConnectionBase):
    """SSH over asyncssh, kept open between tasks by a local persistent process."""

    transport = "pipelined.sftp.asyncssh"
    has_pipelining = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._spec: ConnectionSpec | None = None
        self._socket: str | None = None
        self._direct: SSHSession | None = None

    # -- setup ---------------------------------------------------------------------

    def _host(self) -> str:
        return str(self.get_option("host") or self._play_context.remote_addr or "?")

    def _inventory_name(self) -> str:
        name = getattr(self._play_context, "remote_addr", None) or self.get_option("host")
        return str(name)

    def _build_spec(self) -> ConnectionSpec:
        """The ConnectionSpec for this host from the resolved options (no secret in errors)."""
        try:
            spec = connection_spec(self, self._host())
        except AdapterError as exc:
            raise AnsibleConnectionFailure(str(exc)) from None
        changes: dict[str, Any] = {}
        policy = self.get_option("host_key_policy")
        if policy:
            if policy not in _HOST_KEY_POLICIES:
                raise AnsibleError(
                    f"host_key_policy {policy!r} is not one of {', '.join(_HOST_KEY_POLICIES)}."
                )
            # an explicit policy beats StrictHostKeyChecking; host_key_checking=false beats both
            changes["host_key_policy"] = policy if self.get_option("host_key_checking") else "off"
        known_hosts = self.get_option("known_hosts_file")
        if known_hosts:
            changes["known_hosts"] = os.path.expanduser(str(known_hosts))
        keepalive = self.get_option("keepalive_interval")
        if keepalive is not None:
            changes["keepalive_interval"] = float(keepalive)
        changes["compression"] = bool(self.get_option("compression"))
        if changes:
            spec = dataclasses.replace(spec, **changes)
        jump = self.get_option("jump_host")
        if jump:
            try:
                spec = dataclasses.replace(spec, jump=jump_chain(str(jump), spec))
            except AdapterError as exc:
                raise AnsibleConnectionFailure(str(exc)) from None
        elif spec.jump is not None and (known_hosts or policy):
            # hops inherit the target's host key settings, overridden above
            spec = dataclasses.replace(spec, jump=_rehome(spec.jump, spec))
        return spec

    def _run(self, coro: Any) -> Any:
        import asyncio  # loaded on first use: commands over the persistent process need none

        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    def _connect(self) -> Connection:
        if getattr(self, "_connected", False):
            return self
        spec = self._build_spec()
        self._spec = spec
        display.vvv(
            f"ESTABLISH ASYNCSSH CONNECTION FOR USER: {spec.user or '(local user)'} "
            f"ON PORT {spec.port} TO {spec.host}",
            host=spec.host,
        )
        if self.get_option("persistent"):
            self._socket = self._ensure_server(spec)
        else:
            from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux as server

            try:
                self._direct = self._run(server.open_connection(spec))
            except mux.MuxError as exc:
                raise _failure(exc) from None
        self._connected = True
        return self

    def _ensure_server(self, spec: ConnectionSpec) -> str:
        try:
            return mux.ensure_server(
                spec,
                directory=str(self.get_option("control_path_dir")),
                idle_timeout=float(self.get_option("persist_idle_timeout")),
            )
        except mux.MuxError as exc:
            raise _failure(exc) from None
        except OSError as exc:
            raise AnsibleConnectionFailure(
                f"Cannot start the persistent connection to {spec.display()}: {exc}."
            ) from None

    # -- commands ------------------------------------------------------------------

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = True
    ) -> tuple[int, bytes, bytes]:
        """Run a command on the host; ``in_data`` goes to its stdin (module pipelining)."""
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv(f"EXEC {cmd}", host=self._host())
        channel = self._start(to_text(cmd, errors="surrogate_or_strict"))
        try:
            return self._exec(channel, in_data, sudoable)
        finally:
            channel.close()

    def _start(self, cmd: str) -> mux.MuxCommand | _DirectCommand:
        if self._direct is not None:
            from ansible_collections.pipelined.sftp.plugins.plugin_utils.remote_command import (
                RemoteCommand,
            )

            try:
                started = self._run(RemoteCommand.start(self._direct.conn, cmd))
                return _DirectCommand(self._run, started)
            except (OSError, Exception) as exc:
                raise AnsibleConnectionFailure(
                    f"Cannot run a command on {self._spec_display()}: {exc}"
                ) from None
        spec, path = self._require_spec(), self._require_socket()
        try:
            return mux.MuxCommand.start(path, cmd)
        except mux.MuxError:
            # the persistent process may have just idled out or lost its connection
            self._socket = self._ensure_server(spec)
            try:
                return mux.MuxCommand.start(self._socket, cmd)
            except mux.MuxError as exc:
                raise _failure(exc) from None

    def _spec_display(self) -> str:
        return self._spec.display() if self._spec else self._host()

    def _exec(
        self, channel: mux.MuxCommand | _DirectCommand, in_data: bytes | None, sudoable: bool
    ) -> tuple[int, bytes, bytes]:
        become = self.become if sudoable else None
        expect_prompt = bool(become is not None and become.expect_prompt())
        if not expect_prompt:
            _send(channel, in_data)
        out = bytearray()
        err = bytearray()
        waiting = expect_prompt
        prompted = False
        timeout = float(self.get_option("timeout") or 10)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if waiting:
                    name, data, status = channel.read_event(max(0.01, deadline - time.monotonic()))
                else:
                    name, data, status = channel.read_event()
            except TimeoutError:
                raise AnsibleError(
                    f"Timed out after {timeout:g} s waiting for privilege escalation on "
                    f"{self._spec_display()}."
                ) from None
            except mux.MuxError as exc:
                raise _failure(exc) from None
            if name == "exit":
                rc = status
                break
            (out if name == "stdout" else err).extend(data)
            if not waiting or become is None:
                continue
            seen = bytes(out) + bytes(err)
            if become.check_success(seen):
                waiting = False
                _send(channel, in_data)
            elif prompted and become.check_incorrect_password(seen):
                raise AnsibleError(f"Incorrect {become.name} password")
            elif become.check_missing_password(seen):
                raise AnsibleError(f"Missing {become.name} password")
            elif not prompted and become.check_password_prompt(seen):
                password = become.get_option("become_pass") or ""
                channel.write(to_bytes(password, errors="surrogate_or_strict") + b"\n")
                prompted = True
                _drop_prompt(out, err, become)
        stdout = bytes(out)
        stderr = bytes(err)
        if self.become is not None and sudoable and self.become.success:
            stdout = _drop_success(stdout, self.become)
        return rc, stdout, stderr

    # -- files ---------------------------------------------------------------------

    def get_core_session(self, become: bool = True) -> Any:
        """A core Session (spec, open_sftp, exec, aclose) on this connection, for actions.

        With ``become`` and a become plugin on the task, SFTP channels and commands run under
        sudo (the become plugin's user, exe and password). Run its coroutines with
        :meth:`run_core`, which works whether or not the connection is persistent. Closing the
        session never closes this plugin's connection.
        """
        self._connect()
        spec = self._require_spec()
        if become and self.become is not None:
            try:
                spec = dataclasses.replace(
                    spec, become=become_spec(self.become, self._inventory_name())
                )
            except AdapterError as exc:
                raise AnsibleError(str(exc)) from None
        if self._direct is not None:
            from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import (
                SSHSession,
            )

            return _Borrowed(SSHSession(spec, self._direct.conn))
        if mux.ping(self._require_socket()) is None:
            self._socket = self._ensure_server(self._require_spec())
        from ansible_collections.pipelined.sftp.plugins.plugin_utils.mux_session import MuxSession

        return MuxSession(spec, self._require_socket())

    def run_core(self, coro: Any) -> Any:
        """Run a coroutine using a session from :meth:`get_core_session` to completion.

        A lost persistent connection raises AnsibleConnectionFailure (the host is
        unreachable); the core's own errors pass through unchanged.
        """
        self._connect()
        try:
            return self._run(coro)
        except mux.MuxError as exc:
            raise _failure(exc) from None

    def _require_spec(self) -> ConnectionSpec:
        if self._spec is None:
            raise AnsibleError("The asyncssh connection is used before it was set up.")
        return self._spec

    def _require_socket(self) -> str:
        if self._socket is None:
            raise AnsibleError("The asyncssh persistent connection is used before it started.")
        return self._socket

    def put_file(self, in_path: str, out_path: str) -> None:
        """Copy a local file to exactly ``out_path`` on the host over pipelined SFTP."""
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path}", host=self._host())
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        self._transfer("put", in_path, out_path)

    def fetch_file(self, in_path: str, out_path: str) -> None:
        """Copy the host's file ``in_path`` to the local path ``out_path``."""
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} TO {out_path}", host=self._host())
        self._transfer("get", in_path, out_path)

    def _transfer(self, op: str, src: str, dest: str) -> None:
        """Copy one file: ``op`` "put" (local src to remote dest) or "get" (the reverse)."""
        from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_files as files

        try:
            if self._direct is not None:
                how = files.put if op == "put" else files.get
                self._run(how(self._direct, src, dest))
            else:
                self._run(self._mux_transfer(op, src, dest))
        except files.TransferError as exc:
            raise AnsibleError(str(exc)) from None
        except mux.MuxError as exc:
            raise _failure(exc) from None
        except Exception as exc:
            if type(exc).__name__ in ("ConnectError", "HostKeyError", "AuthError", "BecomeError"):
                if getattr(exc, "unreachable", False):
                    raise AnsibleConnectionFailure(str(exc)) from None
                raise AnsibleError(str(exc)) from None
            raise

    async def _mux_transfer(self, op: str, src: str, dest: str) -> None:
        """The persistent process copies the file itself (local paths made absolute here)."""
        if op == "put":
            src = os.path.abspath(src)
        else:
            dest = os.path.abspath(dest)
        from ansible_collections.pipelined.sftp.plugins.plugin_utils.mux_session import transfer

        try:
            await transfer(self._require_socket(), op, src, dest)
        except mux.MuxError as exc:
            if exc.kind != "unreachable":
                raise
            # the persistent process may have just idled out or lost its connection
            self._socket = self._ensure_server(self._require_spec())
            await transfer(self._socket, op, src, dest)

    # -- lifecycle -----------------------------------------------------------------

    def reset(self) -> None:
        """Close the connection, persistent process included; the next task reconnects."""
        if self.get_option("persistent"):
            spec = self._spec or self._build_spec()
            path = mux.socket_path_for(spec, str(self.get_option("control_path_dir")))
            if mux.stop(path):
                display.vvv("RESET: stopped the persistent connection", host=self._host())
        self.close()

    def close(self) -> None:
        """Release this task's resources; a persistent connection stays for later tasks."""
        if self._direct is not None:
            session, self._direct = self._direct, None
            try:
                self._run(session.aclose())
            except Exception as exc:  # closing must never fail a task
                display.vvvv(f"closing the connection failed: {exc}", host=self._host())
        if self._loop is not None and not self._loop.is_closed():
            self._loop.close()
        self._loop = None
        self._socket = None
        self._connected = False


class _Borrowed:
    """A core session on this plugin's in-process connection; aclose leaves it open."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.spec = session.spec

    async def open_sftp(self, *, early: bool = False) -> Any:
        return await self._session.open_sftp(early=early)

    async def exec(self, command: str, stdin: bytes | None = None) -> Any:
        return await self._session.exec(command, stdin)

    async def aclose(self) -> None:
        """Nothing to close: the connection belongs to the plugin."""


def _rehome(hop: ConnectionSpec, target: ConnectionSpec) -> ConnectionSpec:
    inner = _rehome(hop.jump, target) if hop.jump is not None else None
    return dataclasses.replace(
        hop,
        known_hosts=target.known_hosts,
        host_key_policy=target.host_key_policy,
        jump=inner,
    )


def _failure(exc: mux.MuxError) -> AnsibleError:
    if exc.unreachable:
        return AnsibleConnectionFailure(str(exc))
    return AnsibleError(str(exc))


def _send(channel: mux.MuxCommand | _DirectCommand, data: bytes | None) -> None:
    if data:
        channel.write(data)
    channel.write_eof()


class _DirectCommand:
    """MuxCommand's blocking interface over a RemoteCommand on the plugin's own event loop."""

    def __init__(self, run: Any, command: RemoteCommand) -> None:
        self._run = run
        self._command = command

    def write(self, data: bytes) -> None:
        self._command.write(data)

    def write_eof(self) -> None:
        self._command.write_eof()

    def read_event(self, timeout: float | None = None) -> tuple[str, bytes, int]:
        import asyncio

        from ansible_collections.pipelined.sftp.plugins.plugin_utils.remote_command import (
            CommandError,
        )

        try:
            event: tuple[str, bytes, int] = self._run(
                asyncio.wait_for(self._command.read_event(), timeout)
            )
        except CommandError as exc:
            raise mux.MuxError(f"Cannot run the command: {exc}") from None
        return event

    def close(self) -> None:
        self._command.close()


def _drop_prompt(out: bytearray, err: bytearray, become: Any) -> None:
    """Remove the become password prompt from what the command printed so far."""
    prompt = to_bytes(become.prompt or "")
    for buf in (out, err):
        at = bytes(buf).find(prompt) if prompt else -1
        if at >= 0:
            del buf[at : at + len(prompt)]


def _drop_success(stdout: bytes, become: Any) -> bytes:
    """Remove the first line carrying the become success marker."""
    lines = stdout.splitlines(True)
    for index, line in enumerate(lines):
        if become.check_success(line):
            del lines[index]
            break
    return b"".join(lines)
