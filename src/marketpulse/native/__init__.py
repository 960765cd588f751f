"""Optional compiled decoders for the hottest wire paths, and the switch that turns them off.

The pure-Python decoders in ``feeds/<broker>/wire.py`` are the reference and always work. Where a
broker's parser would otherwise be limited by the interpreter (building a ``Tick`` with ten depth
levels costs more than the whole budget), a small C module here does the same job for the
common packet layout and hands everything else back to the Python decoder. The modules are
compiled by ``make env`` (``python -m marketpulse.native.build``) when a C compiler and the
Python headers are present; without them marketpulse runs the pure-Python decoders, only slower.

A compiled module is used only if it was built from the C source now beside it (the build
stamps the source's SHA-256 into the module), so an edited source never runs as a stale binary.
``MARKETPULSE_NATIVE=0`` forces the pure-Python decoders everywhere.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

ENV_SWITCH = "MARKETPULSE_NATIVE"
SOURCES = Path(__file__).resolve().parent


def enabled() -> bool:
    """False when ``MARKETPULSE_NATIVE`` is set to 0/false/no/off."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in {"0", "false", "no", "off"}


def source_digest(name: str) -> str:
    """SHA-256 (hex) of the C source of module ``name`` and of the headers every module
    includes, as the build stamps it: editing either makes the compiled module stale."""
    digest = hashlib.sha256((SOURCES / f"{name}.c").read_bytes())
    for header in sorted(SOURCES.glob("*.h")):
        digest.update(header.read_bytes())
    return digest.hexdigest()


def load(name: str) -> ModuleType | None:
    """The compiled module ``marketpulse.native.<name>`` when it is enabled, built and current;
    otherwise None (and a warning for a stale build, which ``make env`` fixes)."""
    if not enabled():
        return None
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ImportError:
        return None
    if getattr(module, "SOURCE_SHA256", None) != source_digest(name):
        log.warning(
            "compiled %s.%s is older than its C source; using the pure-Python decoder "
            "(run `make env` to rebuild)",
            __name__,
            name,
        )
        return None
    return module
