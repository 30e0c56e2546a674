"""The ``selfie`` person mask with the real MediaPipe model files on real photos (scikit-image samples).

The model files come the way ``livestyle weights pull mediapipe-selfie`` gets them (the mediapipe
0.10.21 wheel from PyPI, unzipped, SHA-256 checked), cached in ``~/.cache/livestyle/weights``
(``$LIVESTYLE_CACHE_DIR``) across runs. ``astronaut`` has a person, traced by hand as coarse
polygons in ``tests/data/astronaut_person.json``; ``coffee``, ``chelsea`` (a cat's face filling the
frame) and ``rocket`` have none.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from livestyle.config import SelfieMaskConfig
from livestyle.models.litert import litert_available
from livestyle.effects.masks import fit_mask, open_mask_provider, person_mask_kind
from livestyle.effects.masks.selfie import SelfieSegmenter, open_selfie_segmenter
from livestyle.effects.masks.smoothing import TemporalSmoother

data = pytest.importorskip("skimage.data", reason="scikit-image (the dev extra) has the sample photos")
pytestmark = pytest.mark.skipif(not litert_available(), reason="needs LiteRT: pip install 'livestyle[effects]'")

REFERENCE = Path(__file__).parent / "data" / "astronaut_person.json"
MIN_IOU = 0.85  # measured 0.93 (general) and 0.92 (landscape) at mask >= 0.5


@pytest.fixture(scope="session")
def selfie_files() -> dict[str, Path]:
    from livestyle.models.weights_pull import pull

    return pull("mediapipe-selfie", progress=False)


@pytest.fixture()
def segmenter(selfie_files: dict[str, Path]) -> SelfieSegmenter:
    return open_selfie_segmenter(SelfieMaskConfig(gate_interval=1))


def reference() -> tuple[np.ndarray, np.ndarray]:
    """``(person, care)`` boolean ``[512, 512]`` maps from the committed polygons (care: outside the held helmet)."""
    ref = json.loads(REFERENCE.read_text())
    h, w = ref["size"][1], ref["size"][0]
    person = np.zeros((h, w), np.uint8)
    ignore = np.zeros((h, w), np.uint8)
    cv2.fillPoly(person, [np.array(ref["person"], np.int32)], 1)
    cv2.fillPoly(ignore, [np.array(ref["ignore"], np.int32)], 1)
    return person.astype(bool), ~ignore.astype(bool)


def iou(mask: np.ndarray, person: np.ndarray, care: np.ndarray) -> float:
    found = (mask >= 0.5) & care
    truth = person & care
    return float((found & truth).sum() / (found | truth).sum())


def panned(n: int, step: int = 4, noise: float = 3.0, seed: int = 0) -> list[np.ndarray]:
    """640x480 views of the astronaut photo (enlarged 2x), panned ``step`` px per frame, with sensor noise."""
    big = cv2.resize(data.astronaut(), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        view = big[60:540, i * step : i * step + 640].astype(np.float32)
        frames.append(np.clip(view + rng.normal(0, noise, view.shape), 0, 255).astype(np.uint8))
    return frames


def test_the_pulled_files_are_the_registry_s(selfie_files: dict[str, Path]) -> None:
    from livestyle.models.weights_verify import verify

    results = verify("mediapipe-selfie")
    assert [r.spec.role for r in results] == ["general", "landscape", "face"] == list(selfie_files)
    assert all(r.ok for r in results), [(r.spec.role, r.problem) for r in results]


@pytest.mark.parametrize("variant", ["general", "landscape"])
def test_astronaut_mask_matches_the_hand_drawn_outline(selfie_files, variant: str) -> None:
    seg = open_selfie_segmenter(SelfieMaskConfig(variant=variant))
    person, care = reference()
    assert seg.compute(data.astronaut()).subject.shape == (256, 256)  # MASK_SCALE of the frame
    mask = seg.probability(data.astronaut())
    assert mask.shape == (512, 512) and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    score = iou(mask, person, care)
    print(f"{variant}: IoU {score:.3f}, mean in person {mask[person].mean():.2f}, outside {mask[~person & care].mean():.3f}")
    assert score >= MIN_IOU
    assert mask[person].mean() > 0.85 and mask[~person & care].mean() < 0.08


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_no_person_gives_an_empty_mask(segmenter: SelfieSegmenter, name: str) -> None:
    photo = getattr(data, name)()
    mask = segmenter.compute(photo).subject
    assert mask.shape == (round(photo.shape[0] / 2), round(photo.shape[1] / 2))
    assert segmenter.gate is not None and segmenter.gate.last_score < 0.6
    assert mask.max() == 0.0


def test_without_the_face_gate_a_cat_close_up_is_a_person(selfie_files) -> None:
    """Why the gate exists: the segmentation network alone marks most of ``chelsea`` as person."""
    seg = open_selfie_segmenter(SelfieMaskConfig(face_gate=0.0))
    assert seg.gate is None
    assert (seg.compute(data.chelsea()).subject >= 0.5).mean() > 0.5
    assert seg.compute(data.rocket()).subject.max() < 0.5


def test_gate_holds_for_one_missed_check_then_closes(segmenter: SelfieSegmenter) -> None:
    astronaut, chelsea = data.astronaut(), cv2.resize(data.chelsea(), (512, 512))
    assert segmenter.compute(astronaut).subject.mean() > 0.3
    held = segmenter.compute(chelsea).subject  # first check without a face: still open
    assert held.mean() > 0.5
    assert segmenter.compute(chelsea).subject.max() == 0.0  # second: closed
    assert segmenter.compute(astronaut).subject.mean() > 0.3  # a face again: open at once
    segmenter.reset()
    assert segmenter.gate is not None and not segmenter.gate.update(data.rocket())


def test_gate_checks_only_every_nth_frame(selfie_files) -> None:
    seg = open_selfie_segmenter(SelfieMaskConfig(gate_interval=6))
    assert seg.gate is not None
    calls = []
    presence = seg.gate.detector.presence
    seg.gate.detector.presence = lambda image: calls.append(1) or presence(image)  # type: ignore[method-assign]
    for frame in panned(13):
        assert seg.compute(frame).subject.mean() > 0.2
    assert len(calls) == 3  # frames 0, 6 and 12


def test_panned_photo_keeps_the_person_and_smoothing_cuts_edge_flicker(segmenter: SelfieSegmenter) -> None:
    step = 4
    frames = panned(40, step=step)
    masks = [fit_mask(segmenter.compute(f).subject, 480, 640) for f in frames]
    assert min(float(m.mean()) for m in masks) > 0.2  # the person is found in every view
    smoother = TemporalSmoother(history=0.5)
    smoothed = [smoother.update(m).copy() for m in masks]

    def flicker(seq: list[np.ndarray]) -> float:
        """Mean change between successive masks after undoing the pan (what is left is flicker)."""
        return float(np.mean([np.abs(b[:, : -step] - a[:, step:]).mean() for a, b in itertools.pairwise(seq[5:])]))

    raw, smooth = flicker(masks), flicker(smoothed)
    print(f"edge flicker after pan compensation: raw {raw:.5f}, smoothed {smooth:.5f}, factor {raw / smooth:.2f}")
    assert smooth < 0.75 * raw


def test_auto_variant_follows_the_aspect_ratio(segmenter: SelfieSegmenter) -> None:
    assert segmenter.model_for(480, 640).variant.role == "general"
    assert segmenter.model_for(720, 1280).variant.role == "landscape"
    assert segmenter.model_for(1280, 720).variant.role == "general"
    wide = cv2.resize(data.astronaut(), (1280, 720))
    assert segmenter.compute(wide).subject.shape == (360, 640)


def test_person_means_selfie_where_litert_is_installed(selfie_files) -> None:
    from livestyle.models.litert import override_litert

    assert person_mask_kind() == "selfie"
    assert open_mask_provider("person").name == "selfie"
    override_litert(False)
    try:
        assert person_mask_kind() == "person-hq"
    finally:
        override_litert(None)


def test_cli_blurs_the_background_of_a_real_clip_and_keeps_every_frame(selfie_files, tmp_path: Path) -> None:
    """``livestyle run --effect background --mask person --set effects.fill=blur`` on a panned photo clip."""
    pytest.importorskip("av")
    from media_helpers import decoded_rgb, write_h264

    from livestyle.cli import main

    frames = panned(30, step=4, noise=0.0)
    clip, out = tmp_path / "pan.mp4", tmp_path / "out.mp4"
    write_h264(clip, frames, fps=30, options={"crf": "12"})
    code = main(["run", "--source", str(clip), "--sink", str(out), "--model", "passthrough", "--effect", "background",
                 "--mask", "person", "--set", "effects.fill=blur", "--no-loop", "--no-pace", "--size", "640x480", "--quiet"])
    assert code == 0
    written = decoded_rgb(out)
    assert len(written) == len(frames)

    from livestyle.effects.generator import blurred

    def dist(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
        return float(np.abs(a.astype(np.float32) - b)[region].mean())

    face = np.zeros((480, 640), bool)
    face[100:260, 300:460] = True  # her face in the first view (the photo enlarged 2x, from x=0, y=60)
    flag = np.zeros((480, 640), bool)
    flag[0:300, 0:120] = True  # the flag behind her
    for k in (0, 15, 29):
        out_k, source, blur = written[k], frames[k], blurred(frames[k], 12.0)
        region = np.roll(face, -4 * k, axis=1)
        print(k, [round(dist(out_k, x, r), 2) for r in (region, flag) for x in (source, blur)])
        assert dist(out_k, source, region) < 0.5 * dist(out_k, blur, region)  # the face: camera, sharp
        assert dist(out_k, blur, flag) < 0.5 * dist(out_k, source, flag)  # the flag: the blurred camera


def test_loading_the_mask_model_prints_no_native_info_line(selfie_files: dict[str, Path]) -> None:
    """LiteRT's C++ runtime writes ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` to
    fd 2 on every load; livestyle drops its INFO lines and passes anything else through."""
    import subprocess
    import sys

    path = next(iter(p for p in selfie_files.values() if str(p).endswith(".tflite")))
    code = ("import os, sys\n"
            "from livestyle.models import litert\n"
            f"litert.load_litert_net({str(path)!r})\n"
            "with litert._native_info_silenced():\n"
            "    os.write(2, b'INFO: dropped\\nWARNING: kept\\n')\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert "XNNPACK" not in proc.stderr and "INFO: dropped" not in proc.stderr
    assert "WARNING: kept" in proc.stderr
