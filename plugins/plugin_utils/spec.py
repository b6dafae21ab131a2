"""Plain inputs of the transfer core: where to connect and how to transfer.

Nothing here imports Ansible; the action plugins build these from task options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

HostKeyPolicy = Literal["strict", "accept-new", "off"]
LinkPolicy = Literal["preserve", "follow", "skip"]
ComparePolicy = Literal["size_mtime", "checksum", "always"]

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


@dataclass(frozen=True)
class TransferOptions:
    """How a push or pull behaves. Defaults are what a user gets without options."""

    preserve_mode: bool = True
    preserve_times: bool = True
    mode: int | None = None
    """Force this permission mode on every file written (overrides preserve_mode)."""
    directory_mode: int | None = None
    """Mode for directories the transfer creates; None copies the source's mode."""
    owner: str | None = None
    group: str | None = None
    links: LinkPolicy = "preserve"
    compare: ComparePolicy = "size_mtime"
    delete: bool = False
    exclude: tuple[str, ...] = ()
    atomic: bool = True
    resume: bool = False
    max_requests: int = 4096
    """Cap on SFTP requests outstanding per server."""
    max_files: int | None = None
    """Files in flight at once; None adapts to the measured round trip."""
    connections: int = 1
    block_size: int = 256 * KIB
    fail_fast: bool = False
    check_mode: bool = False
    large_file_threshold: int = 4 * MIB


@dataclass(frozen=True)
class RemoveOptions:
    """How a remove behaves."""

    max_requests: int = 4096
    fail_fast: bool = False
    check_mode: bool = False
