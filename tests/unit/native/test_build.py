"""``python -m marketpulse.native.build``: builds what it can, says what it cannot."""

from __future__ import annotations

import pytest

from marketpulse import native
from marketpulse.native import build


def test_every_module_is_built_and_current_where_a_compiler_and_headers_exist() -> None:
    if build.compiler() is None or build.python_headers() is None:
        pytest.skip("no C compiler or Python headers here: the pure-Python decoders run")
    if not native.enabled():
        pytest.skip(f"{native.ENV_SWITCH} turns the compiled decoders off")
    missing = [name for name in build.sources() if native.load(name) is None]
    assert not missing, f"not built or stale: {missing}; run `make env`"


def test_a_current_module_is_not_rebuilt() -> None:
    cc, include = build.compiler(), build.python_headers()
    if cc is None or include is None:
        pytest.skip("no C compiler or Python headers here")
    build.build_one(cc, include, "_angelone")
    assert build.build_one(cc, include, "_angelone") is False


def test_no_compiler_is_a_notice_not_a_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(build, "compiler", lambda: None)
    assert build.main([]) == 0
    assert "no C compiler (gcc or clang) found" in capsys.readouterr().err
    monkeypatch.setattr(build, "compiler", lambda: ["cc"])
    monkeypatch.setattr(build, "python_headers", lambda: None)
    assert build.main([]) == 0
    assert "Python headers" in capsys.readouterr().err
