"""Seed ansible-test's bootstrap cache so it never downloads ``get-pip.py``.

ansible-test (ansible-core 2.19) fetches ``get-pip-<version>.py`` from a host outside the
package registries whenever it creates a virtual environment (``--venv``, sanity test venvs),
unless ``~/.ansible/test/cache/get_pip_<version>.py`` exists (ansible/ansible#77304).
This script reads the pip version the installed ansible-test wants and copies
``tools/get_pip_offline.py`` to that cache path under ``$HOME``.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path


def wanted_pip_version() -> str:
    """Return the pip version the installed ansible-test bootstraps into its venvs."""
    spec = importlib.util.find_spec("ansible_test")
    if spec is None or spec.origin is None:
        raise SystemExit("ansible-test is not installed in this Python environment.")
    source = Path(spec.origin).parent / "_internal" / "python_requirements.py"
    match = re.search(r"pip='([0-9.]+)'", source.read_text(encoding="utf-8"))
    if match is None:
        raise SystemExit(f"{source}: cannot find the pip version ansible-test bootstraps.")
    return match.group(1)


def main() -> int:
    """Copy the offline bootstrap shim into ansible-test's cache."""
    version = wanted_pip_version()
    cache = Path.home() / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"get_pip_{version.replace('.', '_')}.py"
    shutil.copyfile(Path(__file__).with_name("get_pip_offline.py"), target)
    print(f"seeded ansible-test pip {version} bootstrap: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
