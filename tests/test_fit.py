"""Aspect-ratio fit (issue 13): a square stays square whatever the source's shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from media_helpers import decoded_rgb, write_h264

from livestyle.cli import main
from livestyle.errors import ConfigError
from livestyle.engine.fit import fit_box, fit_image, working_size

av = pytest.importorskip("av")


def square_picture(width: int = 640, height: int = 480, side: int = 200) -> np.ndarray:
    """Black ``width``x``height`` RGB with a white ``side``x``side`` square in the middle."""
    image = np.zeros((height, width, 3), np.uint8)
    top, left = (height - side) // 2, (width - side) // 2
    image[top:top + side, left:left + side] = 255
    return image


def white_box(image: np.ndarray, threshold: int = 128) -> tuple[int, int]:
    """Width and height of the bright region's bounding box."""
    ys, xs = np.nonzero(image.mean(axis=2) > threshold)
    return int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def test_crop_pad_stretch_geometry() -> None:
    assert fit_box((640, 480), (832, 480), "crop") == ((0, 55, 640, 369), (832, 480))
    assert fit_box((640, 480), (832, 480), "pad") == ((0, 0, 640, 480), (640, 480))
    assert fit_box((640, 480), (832, 480), "stretch") == ((0, 0, 640, 480), (832, 480))
    assert fit_box((1920, 1080), (832, 480), "crop")[0] == (24, 0, 1872, 1080)
    with pytest.raises(ConfigError, match="sizes must be positive"):
        fit_box((0, 480), (832, 480), "crop")


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_square_stays_square(mode: str) -> None:
    out = fit_image(square_picture(), (832, 480), mode)  # type: ignore[arg-type]
    assert out.shape == (480, 832, 3) and out.dtype == np.uint8
    w, h = white_box(out)
    assert abs(w - h) <= 2, (w, h)
    if mode == "pad":  # pillarbox: black bars left and right, the picture 640 wide
        assert out[:, :90].max() == 0 and out[:, -90:].max() == 0


def test_stretch_is_the_old_behaviour() -> None:
    w, h = white_box(fit_image(square_picture(), (832, 480), "stretch"))
    assert w == pytest.approx(260, abs=2) and h == pytest.approx(200, abs=2)


def test_working_size_rule() -> None:
    assert working_size((640, 480), (832, 480), explicit=True) == (832, 480)
    w, h = working_size((640, 480), (832, 480), explicit=False)
    assert (w % 16, h % 16) == (0, 0) and abs(w / h - 4 / 3) < 0.05 and w * h <= 832 * 480
    assert working_size((640, 480), (832, 480), explicit=False, bound=(512, 512)) == (512, 384)


def write_square_clip(path: Path, frames: int = 6) -> None:
    """``frames`` frames of :func:`square_picture` (640x480, a 200x200 white square) at 30 fps, H.264 crf 10."""
    write_h264(path, [square_picture()] * frames, fps=30, options={"crf": "10"})


@pytest.mark.parametrize(("args", "expect_square"), [([], True), (["--fit", "pad"], True), (["--fit", "stretch"], False)])
def test_square_in_a_4_3_clip_through_the_cli(tmp_path: Path, args: list[str], expect_square: bool) -> None:
    """A 200x200 square in a 640x480 clip, run at 832x480: 200x200 out (it was 260x200)."""
    clip, out = tmp_path / "square.mp4", tmp_path / "out.mp4"
    write_square_clip(clip)
    code = main(["run", "--source", str(clip), "--sink", str(out), "--model", "passthrough", "--no-pace",
                 "--no-loop", "--size", "832x480", "--quiet", *args])
    assert code == 0
    frame = decoded_rgb(out)[-1]
    assert frame.shape == (480, 832, 3)
    w, h = white_box(frame)
    assert (abs(w - h) <= 4) is expect_square, (w, h)


def test_bad_fit_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--source", "pattern", "--sink", "null", "--fit", "zoom", "--max-frames", "1"])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error: stream.fit: expected one of crop, pad, stretch"), err
    assert len(err.strip().splitlines()) == 1


def test_without_size_the_working_size_follows_a_4_3_clip(tmp_path: Path) -> None:
    """No --size: the 4:3 clip is worked and written at 4:3, uncropped; without a model at its own
    size (issue 27, point 9; a model works at about 832x480's pixels: test_the_aspect_rule_...)."""
    clip, out = tmp_path / "square.mp4", tmp_path / "out.mp4"
    write_square_clip(clip)
    code = main(["run", "--source", str(clip), "--sink", str(out), "--model", "passthrough", "--no-pace",
                 "--no-loop", "--quiet"])
    assert code == 0
    frame = decoded_rgb(out)[-1]
    assert frame.shape == (480, 640, 3)  # passthrough: the source's own size
    w, h = white_box(frame)
    assert abs(w - h) <= 4, (w, h)
    assert abs(h / frame.shape[0] - 200 / 480) < 0.02  # the whole picture: nothing cropped away


def test_a_typed_size_or_aspect_fixed_pins_the_working_size(tmp_path: Path) -> None:
    clip = tmp_path / "square.mp4"
    write_square_clip(clip)
    for args in (["--size", "832x480"], ["--set", "stream.aspect=fixed"]):
        out = tmp_path / f"out{len(args[0])}.mp4"
        assert main(["run", "--source", str(clip), "--sink", str(out), "--model", "passthrough", "--no-pace",
                     "--no-loop", "--quiet", *args]) == 0
        assert decoded_rgb(out)[-1].shape == (480, 832, 3)


def test_a_camera_is_asked_for_the_working_size_and_its_own_mode_kept() -> None:
    from livestyle.ingest.camera import CameraDevice, CameraSource

    asked: list[tuple[int, int] | None] = []

    class FourByThree:
        def read(self) -> np.ndarray:
            return square_picture()

        def close(self) -> None:
            pass

    def opener(device: CameraDevice, size: tuple[int, int] | None, fps: float) -> FourByThree:
        asked.append(size)
        return FourByThree()

    source = CameraSource(CameraDevice("test", "test", None, None), size=None, request=(832, 480), opener=opener)
    info = source.open()
    assert asked == [(832, 480)] and (info.width, info.height) == (640, 480)
    frame = next(iter(source.frames()))
    assert frame.image.shape == (480, 640, 3)
    source.close()


def test_the_aspect_rule_stays_within_the_models_largest_size() -> None:
    from livestyle.cli.run import _aspect_rule

    class Family:
        max_size = (512, 512)

    assert _aspect_rule((832, 480), Family())((640, 480)) == (512, 384)
    assert _aspect_rule((832, 480), None)((1920, 1080)) == (832, 464)  # 16:9 at 832x480's pixels
