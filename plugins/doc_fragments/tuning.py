# Copyright: (c) 2026, pipelined.sftp maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the options that size the request pipeline and of how connections are made."""

from __future__ import annotations


class ModuleDocFragment:
    """Pipeline tuning options shared by pipelined_copy and pipelined_fetch."""

    DOCUMENTATION = r"""
options:
  max_requests:
    description:
      - Most SFTP requests outstanding at once on one server connection.
      - More requests in flight hide more network latency; the server's own limits are honoured.
    type: int
    default: 4096
  max_files:
    description:
      - Most files in flight at once.
      - When not set, it adapts to the measured round trip time.
    type: int
  connections:
    description:
      - Number of SSH connections used for large files, transferred in parallel chunks.
    type: int
    default: 1
  block_size:
    description:
      - Size in bytes of each read or write request; the server's limits cap it.
    type: int
    default: 262144
"""
