"""Plain inputs of the transfer core: how a push, pull or remove behaves.

Nothing here imports Ansible; the action plugins build these from task options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import KIB, MIB

LinkPolicy = Literal["preserve", "follow", "skip"]
ComparePolicy = Literal["size_mtime", "checksum", "always"]


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
