"""Compile the optional C decoders of :mod:`marketpulse.native` in place.

``python -m marketpulse.native.build`` (run by ``make env``) compiles each ``<name>.c`` beside
this file into ``<name><EXT_SUFFIX>`` with the compiler and flags of the running interpreter.
A module already built from the same source is left alone. No compiler or no Python headers is
not an error (marketpulse then runs its pure-Python decoders and this says so); a compiler that
rejects our source is, because that is a bug to fix, not a machine to tolerate.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from marketpulse.native import SOURCES, source_digest

# -ffp-contract=off: no fused multiply-add, so every float is rounded exactly as CPython rounds
# the same Python expression (the decoders are tested bit-identical to the Python ones).
CFLAGS = ("-O2", "-fPIC", "-shared", "-ffp-contract=off", "-fno-strict-aliasing", "-Wall")


def compiler() -> list[str] | None:
    """The C compiler command: ``$CC``, else the one CPython was built with, else cc/gcc/clang."""
    configured = os.environ.get("CC") or sysconfig.get_config_var("CC") or ""
    candidates = [shlex.split(configured)] if configured else []
    candidates += [["cc"], ["gcc"], ["clang"]]
    for command in candidates:
        if command and shutil.which(command[0]):
            return command
    return None


def python_headers() -> Path | None:
    include = Path(sysconfig.get_paths()["include"])
    return include if (include / "Python.h").is_file() else None


def target(name: str) -> Path:
    return SOURCES / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"


def sources() -> list[str]:
    return sorted(path.stem for path in SOURCES.glob("*.c"))


def build_one(cc: list[str], include: Path, name: str, *, force: bool = False) -> bool:
    """Compile one module unless it is current; True when it was (re)built."""
    digest = source_digest(name)
    stamp = target(name).with_suffix(".sha256")
    if not force and target(name).exists() and stamp.exists() and stamp.read_text() == digest:
        return False
    command = [
        *cc, *CFLAGS, f"-I{include}", f'-DSOURCE_SHA256="{digest}"',
        str(SOURCES / f"{name}.c"), "-o", str(target(name)),
    ]  # fmt: skip
    subprocess.run(command, check=True)
    stamp.write_text(digest)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m marketpulse.native.build", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if current")
    args = parser.parse_args(argv)
    cc = compiler()
    include = python_headers()
    if cc is None or include is None:
        missing = "C compiler (gcc or clang)" if cc is None else "Python headers (Python.h)"
        print(
            f"marketpulse: no {missing} found; using the pure-Python decoders (correct, slower). "
            "Install it and run `make env` again for the compiled ones.",
            file=sys.stderr,
        )
        return 0
    for name in sources():
        try:
            built = build_one(cc, include, name, force=args.force)
        except subprocess.CalledProcessError as exc:
            print(f"marketpulse: compiling {name}.c failed ({exc})", file=sys.stderr)
            return 1
        if built:
            print(f"marketpulse: compiled marketpulse.native.{name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
