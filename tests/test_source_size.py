"""Without a model the output keeps the source's size (issue 27, point 9): passthrough and effects
alone resize nothing, so a 1280x720 call with a blurred background stays 1280x720; a model still
works at the source's aspect ratio at about 832x480 pixels."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from livestyle.cli import main


def _size(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.width, s.codec_context.height


@pytest.fixture(scope="module")
def clip720(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "call.mp4"
    assert main(["demo", "--out", str(path), "--seconds", "1", "--size", "1280x720"]) == 0
    assert _size(path) == (1280, 720)
    return path


@pytest.mark.parametrize("extra", [[], ["--effect", "background", "--mask", "chroma"]], ids=["passthrough", "effect"])
def test_no_model_keeps_the_source_size(clip720: Path, tmp_path: Path, extra: list[str]) -> None:
    out = tmp_path / "out.mp4"
    code = main(["run", "--source", str(clip720), "--sink", str(out), "--model", "passthrough", "--no-loop", "--no-pace",
                 "--no-keys", "--quiet", *extra])
    assert code == 0
    assert _size(out) == (1280, 720)  # it was 832x464


def test_a_given_size_still_wins_without_a_model(clip720: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    assert main(["run", "--source", str(clip720), "--sink", str(out), "--model", "passthrough", "--size", "1024x576",
                 "--no-loop", "--no-pace", "--no-keys", "--quiet"]) == 0
    assert _size(out) == (1024, 576)


def test_a_model_still_works_at_about_its_pixel_count() -> None:
    from livestyle.cli.run import _aspect_rule

    assert _aspect_rule((832, 480), None)((1280, 720)) == (832, 464)
    assert _aspect_rule((832, 480), None, keep_source=True)((1280, 720)) == (1280, 720)
    assert _aspect_rule((832, 480), None, keep_source=True)((641, 481)) == (640, 480)  # even sides for 4:2:0
