"""Import asyncssh without its compiler probe for liboqs: import this module before asyncssh.

On import, asyncssh looks for liboqs (the sntrup761 key exchange) and libnettle (UMAC) with
`ctypes.util.find_library`. On Linux that runs `ldconfig -p`, then gcc and ld when the name
is not in ldconfig's cache: about 20 ms per process on a machine with a compiler and no
liboqs, which every task that connects would pay. While asyncssh imports, the lookup here
reads ldconfig's cache only, which holds every library installed where the dynamic linker
finds it. A liboqs that only the compiler's search path holds is not used; asyncssh then
offers the ML-KEM and curve25519 key exchanges, as it does without liboqs.
"""

from __future__ import annotations

import ctypes.util
import sys
from collections.abc import Callable


def _installed_library_lookup() -> Callable[[str], str | None] | None:
    if not sys.platform.startswith("linux"):
        return None
    lookup: Callable[[str], str | None] | None = getattr(ctypes.util, "_findSoname_ldconfig", None)
    return lookup


def import_asyncssh() -> None:
    """Import asyncssh once per process, with `find_library` reading ldconfig's cache only."""
    if "asyncssh" in sys.modules:
        return
    lookup = _installed_library_lookup()
    if lookup is None:
        import asyncssh

        return
    original = ctypes.util.find_library
    ctypes.util.find_library = lookup  # type: ignore[assignment]
    try:
        import asyncssh  # noqa: F401
    finally:
        ctypes.util.find_library = original


import_asyncssh()
