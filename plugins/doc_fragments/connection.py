# Copyright: (c) 2026, pipelined.sftp maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of how the modules connect: settings taken from the host's connection."""

from __future__ import annotations


class ModuleDocFragment:
    """Notes shared by every module on how connection settings are resolved."""

    DOCUMENTATION = r"""
attributes:
  become:
    description: Is usable alongside become keywords.
    support: full
    details: Only the C(sudo) method; the target's sftp-server runs under C(sudo).
  connection:
    description: Uses the target's configured connection information to execute code on it.
    support: full
  delegation:
    description: Can be used in conjunction with delegate_to and related keywords.
    support: full
notes:
  - The module runs on the controller and talks SFTP to the target; the target needs an SSH
    server with the SFTP subsystem and nothing else (no Python).
  - Connection settings come from the host's connection plugin, resolved as for any task
    (inventory, C(ansible.cfg), command line, C(delegate_to)).
    With C(ansible.builtin.ssh) and C(ansible.builtin.paramiko_ssh) the module reads the host,
    port, user, private key file, password, host key checking and timeout options, and from
    C(ssh_args), C(ssh_common_args) and C(ssh_extra_args) the options C(-J)/C(ProxyJump),
    C(-i)/C(IdentityFile), C(UserKnownHostsFile), C(StrictHostKeyChecking), C(ConnectTimeout),
    C(ServerAliveInterval) and C(Ciphers). Other ssh options, C(~/.ssh/config) and C(ProxyCommand)
    are not read.
  - With the C(pipelined.sftp.asyncssh) connection plugin the module reuses that plugin's
    connection.
  - Hosts using any other connection plugin (for example C(local)) fail with a message naming
    the connection; there is no SSH server to talk to.
  - Host keys are checked against C(~/.ssh/known_hosts) (or C(UserKnownHostsFile)) unless host
    key checking is off; an unknown or changed key fails the task. Nothing ever prompts.
  - Privilege escalation supports C(become_method=sudo) only; the SFTP server is started
    under C(sudo) as C(become_user). A sudo password comes from C(ansible_become_password)
    or C(--ask-become-pass).
  - Long transfers print a progress line every few seconds.
"""
