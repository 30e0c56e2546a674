"""A restarted stream is the same as a new one, and keeps its KV cache buffers (so CUDA graphs
captured on them stay valid: no live chunk pays a re-capture after a reset or a warm-up)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from livestyle.diffusion.family import FAMILY_PRESETS
from livestyle.engine.frames import Frame
from livestyle.diffusion.random_models import random_stream_models
from livestyle.diffusion.stream import StreamPipeline
from livestyle.diffusion.stream_state import Controls

W, H = 64, 48


def _frames(start: int, n: int) -> list[Frame]:
    rng = np.random.default_rng(start)
    return [Frame(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), start + k, Fraction(1, 30), 0.0, start + k)
            for k in range(n)]


def _stream(pipe: StreamPipeline, chunks: int) -> list[np.ndarray]:
    out, i = [], 0
    for _ in range(chunks):
        n = pipe.frames_needed()
        out += [f.image for f in pipe.process(_frames(i, n))]
        i += n
    return out


@pytest.mark.parametrize(("family", "stream_batch", "steps"), [
    ("sdv2", True, 2), ("sdv2", False, 2), ("self-forcing", True, 2), ("krea", True, 2),
])
def test_a_reset_stream_equals_a_new_one_and_reuses_its_cache(family: str, stream_batch: bool, steps: int) -> None:
    torch.manual_seed(0)
    models = random_stream_models("tiny", "cpu", torch.float32)
    fam = FAMILY_PRESETS[family].with_overrides(stream_batch=stream_batch)

    def pipeline() -> StreamPipeline:
        controls = Controls(prompt="p", strength=0.8, steps=steps, seed=3, width=W, height=H, decoder="tiny")
        return StreamPipeline(models, fam, controls)

    chunks = fam.kv_cache_frames + 4  # past the point where the cache is full
    fresh = _stream(pipeline(), chunks)
    pipe = pipeline()
    _stream(pipe, 3)  # a stream with other frames first
    pipe.warmup((W, H))  # the runner's warm-up: synthetic chunks, then a reset
    first_cache = pipe._state.cache
    assert first_cache is None  # a fresh state: the cache is taken from the pool on the first chunk
    again = _stream(pipe, chunks)
    assert len(again) == len(fresh)
    for a, b in zip(again, fresh):
        np.testing.assert_array_equal(a, b)
    caches = dict(pipe._caches)
    pipe.reset()
    _stream(pipe, chunks)
    assert pipe._caches == caches and all(pipe._caches[k] is caches[k] for k in caches)  # same buffers
    assert pipe._state.cache is not None and any(pipe._state.cache is c for c in caches.values())
