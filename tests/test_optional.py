"""Optional dependencies: the install hint in the caller's error type, and ffmpeg's protocol list."""

from __future__ import annotations

import shutil

import pytest

from livestyle.errors import SinkError, SourceError
from livestyle.optional import ffmpeg_protocols, ffmpeg_with_srt, require


def test_require_imports_present_module() -> None:
    assert require("json", SourceError).__name__ == "json"


@pytest.mark.parametrize("error", [SourceError, SinkError])
def test_require_missing_module_raises_callers_error(error: type[SourceError | SinkError]) -> None:
    with pytest.raises(error) as err:
        require("livestyle_no_such_module", error, extra="vcam")
    assert str(err.value) == (
        "livestyle_no_such_module is not installed (No module named 'livestyle_no_such_module'): "
        "pip install 'livestyle[vcam]'"
    )


def test_require_names_the_pip_package() -> None:
    with pytest.raises(SinkError, match=r"^opencv-python is not installed") as err:
        require("livestyle_no_such_module", SinkError, package="opencv-python")
    assert str(err.value).endswith("pip install 'livestyle[io]'")


def test_no_ffmpeg_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert ffmpeg_with_srt() is None


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs an ffmpeg executable (apt install ffmpeg)")
def test_ffmpeg_protocols_lists_real_protocols() -> None:
    protocols = ffmpeg_protocols(shutil.which("ffmpeg") or "")
    assert {"file", "pipe"} <= protocols
    assert ("srt" in protocols) == (ffmpeg_with_srt() is not None)
