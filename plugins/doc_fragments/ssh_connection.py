# Copyright: (c) 2026, pipelined.sftp maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options saying where and how to open an SSH connection, shared with ansible.builtin.ssh."""

from __future__ import annotations


class ModuleDocFragment:
    """SSH connection options: host, port, user, keys, password, host keys, jump, timeouts."""

    DOCUMENTATION = r"""
options:
  host:
    description:
      - Host name or IP address to connect to.
    type: string
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_ssh_host
      - name: delegated_vars['ansible_host']
      - name: delegated_vars['ansible_ssh_host']
  port:
    description:
      - Remote port to connect to. Defaults to 22 (or C(-p)/C(Port) in the ssh arguments).
    type: int
    ini:
      - section: defaults
        key: remote_port
    env:
      - name: ANSIBLE_REMOTE_PORT
    vars:
      - name: ansible_port
      - name: ansible_ssh_port
    keyword:
      - name: port
  remote_user:
    description:
      - User name to log in as. Defaults to the local user name.
    type: string
    ini:
      - section: defaults
        key: remote_user
    env:
      - name: ANSIBLE_REMOTE_USER
    vars:
      - name: ansible_user
      - name: ansible_ssh_user
    cli:
      - name: user
    keyword:
      - name: remote_user
  private_key_file:
    description:
      - Path of a private key file to authenticate with. Without it, the SSH agent and the
        default keys in C(~/.ssh) are tried.
    type: string
    ini:
      - section: defaults
        key: private_key_file
    env:
      - name: ANSIBLE_PRIVATE_KEY_FILE
    vars:
      - name: ansible_private_key_file
      - name: ansible_ssh_private_key_file
    cli:
      - name: private_key_file
        option: '--private-key'
  private_key_passphrase:
    description:
      - Passphrase of an encrypted O(private_key_file).
    type: string
    env:
      - name: ANSIBLE_PRIVATE_KEY_PASSPHRASE
    vars:
      - name: ansible_private_key_passphrase
      - name: ansible_ssh_private_key_passphrase
  password:
    description:
      - Password for O(remote_user). Never logged, never put on a command line.
    type: string
    vars:
      - name: ansible_password
      - name: ansible_ssh_pass
      - name: ansible_ssh_password
  host_key_checking:
    description:
      - Whether to check the server's host key. When false, any host key is accepted
        (same as O(host_key_policy=off)).
    type: boolean
    default: true
    ini:
      - section: defaults
        key: host_key_checking
      - section: ssh_connection
        key: host_key_checking
    env:
      - name: ANSIBLE_HOST_KEY_CHECKING
      - name: ANSIBLE_SSH_HOST_KEY_CHECKING
    vars:
      - name: ansible_host_key_checking
      - name: ansible_ssh_host_key_checking
  host_key_policy:
    description:
      - What to do with a host key when O(host_key_checking) is on.
      - V(strict) accepts only keys already in O(known_hosts_file).
      - V(accept-new) also accepts, and records, the key of a host the file does not know
        yet; a changed key still fails.
      - V(off) accepts any key.
      - A key that does not match the one recorded always fails the connection.
      - Unset, C(StrictHostKeyChecking) in the ssh arguments decides, else V(strict).
    type: string
    choices: [strict, accept-new, 'off']
    env:
      - name: ANSIBLE_ASYNCSSH_HOST_KEY_POLICY
    ini:
      - section: asyncssh_connection
        key: host_key_policy
    vars:
      - name: ansible_asyncssh_host_key_policy
  known_hosts_file:
    description:
      - The known_hosts file host keys are checked against (and recorded in with
        O(host_key_policy=accept-new)).
      - Unset, C(UserKnownHostsFile) in the ssh arguments, else C(~/.ssh/known_hosts).
    type: path
    env:
      - name: ANSIBLE_ASYNCSSH_KNOWN_HOSTS_FILE
    ini:
      - section: asyncssh_connection
        key: known_hosts_file
    vars:
      - name: ansible_asyncssh_known_hosts_file
  ssh_common_args:
    description:
      - ssh command-line arguments, as for C(ansible.builtin.ssh). Read for C(-J) and the
        options C(ProxyJump), C(UserKnownHostsFile), C(StrictHostKeyChecking), C(Port),
        C(User), C(IdentityFile), C(ConnectTimeout), C(ServerAliveInterval) and C(Ciphers);
        other options are ignored. C(ProxyCommand) is refused.
    type: string
    default: ''
    ini:
      - section: ssh_connection
        key: ssh_common_args
    env:
      - name: ANSIBLE_SSH_COMMON_ARGS
    vars:
      - name: ansible_ssh_common_args
    cli:
      - name: ssh_common_args
  ssh_extra_args:
    description:
      - More ssh command-line arguments, read like O(ssh_common_args).
    type: string
    default: ''
    ini:
      - section: ssh_connection
        key: ssh_extra_args
    env:
      - name: ANSIBLE_SSH_EXTRA_ARGS
    vars:
      - name: ansible_ssh_extra_args
    cli:
      - name: ssh_extra_args
  jump_host:
    description:
      - Jump host(s) to connect through, as for C(ssh -J), C([user@]host[:port]), comma
        separated, first hop first. Overrides C(-J)/C(ProxyJump) in the ssh arguments.
      - Hops use the same keys and host key settings as the target; the password is never
        sent to a hop.
    type: string
    env:
      - name: ANSIBLE_ASYNCSSH_JUMP_HOST
    ini:
      - section: asyncssh_connection
        key: jump_host
    vars:
      - name: ansible_asyncssh_jump_host
  timeout:
    description:
      - Seconds to wait for the connection to be established (and for a privilege escalation
        prompt).
    type: integer
    default: 10
    ini:
      - section: defaults
        key: timeout
      - section: ssh_connection
        key: timeout
    env:
      - name: ANSIBLE_TIMEOUT
      - name: ANSIBLE_SSH_TIMEOUT
    vars:
      - name: ansible_ssh_timeout
    cli:
      - name: timeout
  keepalive_interval:
    description:
      - Seconds between keepalive messages on an idle connection; V(0) sends none.
      - Unset, C(ServerAliveInterval) in the ssh arguments, else V(0).
    type: integer
    env:
      - name: ANSIBLE_ASYNCSSH_KEEPALIVE_INTERVAL
    ini:
      - section: asyncssh_connection
        key: keepalive_interval
    vars:
      - name: ansible_asyncssh_keepalive_interval
  compression:
    description:
      - Compress the SSH stream (zlib). Helps on slow links, costs CPU on fast ones.
    type: boolean
    default: false
    env:
      - name: ANSIBLE_ASYNCSSH_COMPRESSION
    ini:
      - section: asyncssh_connection
        key: compression
    vars:
      - name: ansible_asyncssh_compression
"""
