"""Stand-in for ansible-test's downloaded ``get-pip.py`` bootstrap script.

ansible-test bootstraps pip into each virtual environment it creates by downloading
``get-pip-<version>.py`` from a host this machine cannot reach (ansible/ansible#77304).
It first looks for a cached copy under ``~/.ansible/test/cache/``; ``tools/seed_ansible_test.py``
places this file there. Run as ``python get_pip_offline.py [pip options] pip==X ...``, it
installs pip from the interpreter's bundled wheel (``ensurepip``) and then installs the
requested packages with that pip from the configured package index.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys


def _bootstrap_pip() -> None:
    """Give ``sys.executable`` a working pip, without downloading a bootstrap script."""
    if importlib.util.find_spec("ensurepip") is None:
        # Interpreters without ensurepip (Debian's python3 without python3-venv): let the
        # base interpreter's pip install pip into this environment.
        base = getattr(sys, "_base_executable", "") or "python3"
        subprocess.run(
            [
                base,
                "-m",
                "pip",
                "--python",
                sys.executable,
                "install",
                "--disable-pip-version-check",
                "pip",
            ],
            check=True,
        )
        return
    subprocess.run(
        [sys.executable, "-m", "ensurepip", "--default-pip"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main(argv: list[str]) -> int:
    """Install pip, then the requested packages (get-pip's own flags are dropped)."""
    get_pip_only = ("--no-setuptools", "--no-wheel")
    packages = [arg for arg in argv if not arg.startswith("-")]
    options = [arg for arg in argv if arg.startswith("-") and arg not in get_pip_only]
    _bootstrap_pip()
    if packages:
        env = dict(os.environ)
        env.pop("GET_PIP", None)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", *options, *packages], check=True, env=env
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
