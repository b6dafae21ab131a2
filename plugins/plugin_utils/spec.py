"""Plain inputs of the transfer core: where to connect, and as whom.

Nothing here imports Ansible; the connection and action plugins build these from resolved
options. How to transfer is in options.py (kept apart: a task's worker loads this module for
every command, and each dataclass costs it time to create).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

HostKeyPolicy = Literal["strict", "accept-new", "off"]

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class BecomeSpec:
    """Run the remote SFTP server as another user through privilege escalation."""

    user: str = "root"
    method: Literal["sudo"] = "sudo"
    exe: str = "sudo"
    password: str | None = field(default=None, repr=False)
    sftp_server: str | None = None
    """Path of the sftp-server binary on the target; None probes the usual places."""


@dataclass(frozen=True)
class ConnectionSpec:
    """Everything needed to open one SSH connection and SFTP session."""

    host: str
    port: int = 22
    user: str | None = None
    client_keys: tuple[str, ...] = ()
    passphrase: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    known_hosts: str | None = None
    """Path of a known_hosts file; None means ~/.ssh/known_hosts."""
    host_key_policy: HostKeyPolicy = "strict"
    jump: ConnectionSpec | None = None
    connect_timeout: float = 10.0
    keepalive_interval: float = 0.0
    compression: bool = False
    ciphers: tuple[str, ...] | None = None
    """Cipher preference; None prefers AES-GCM / AES-CTR when the server offers them."""
    window: int = 16 * MIB
    become: BecomeSpec | None = None

    def display(self) -> str:
        """user@host:port, for messages (never carries a secret)."""
        who = f"{self.user}@" if self.user else ""
        return f"{who}{self.host}:{self.port}"
