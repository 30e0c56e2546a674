"""Pipeline-parallel streams on CPU processes (gloo): the N-stage stream's frames equal the
one-process stream's within 1/255 (stream batch on and off, 2 and 3 stages) across a prompt
change, a LoRA switch and a reset; a killed stage ends the stream with one line naming it and no
process left. The tiny stack is ``parallel_helpers.TinyStack`` (3 blocks: one per stage at 3)."""

from __future__ import annotations

import dataclasses
import os
import signal
import time

import numpy as np
import psutil
import pytest
import torch

from livestyle.config import Config
from livestyle.engine.commands import LoraRef, Reset, SetLora, SetPrompt, SetStrength
from livestyle.errors import StageFailedError
from livestyle.models.kv_cache import KVCache
from livestyle.parallel.open import open_parallel
from livestyle.parallel.stage_dit import StageDiT
from livestyle.planning.stage_split import StageSpan, equal_split

from parallel_helpers import TinyStack, frames

TOLERANCE = 1  # uint8 levels: 1/255


def _config(gpus: int, stream_batch: bool, steps: int = 2) -> Config:
    cfg = Config()
    model = dataclasses.replace(cfg.model, gpus=gpus, device="cpu", steps=steps, stream_batch=stream_batch,
                                transition_chunks=2, prompt="first look")
    return dataclasses.replace(cfg, model=model)


def _stages(stream) -> list[psutil.Process]:  # type: ignore[no-untyped-def]
    """The stream's stage processes (not multiprocessing's resource tracker, which lives with us)."""
    return [psutil.Process(p.pid) for p in stream._procs]


def _gone(procs: list[psutil.Process], timeout: float = 10.0) -> list[psutil.Process]:
    """The processes of ``procs`` still running (not zombies) after ``timeout``."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_stage_blocks_chained_equal_one_forward() -> None:
    """Three StageDiT slices over their own caches give the full DiT's velocity, chunk after chunk."""
    stack = TinyStack()
    dit = stack(_config(1, True)).models.dit
    cfg = dit.config
    ctx = torch.randn(1, 8, cfg.text_dim)
    spans = equal_split(cfg.num_layers, 3)
    stages = [StageDiT(dit, s) for s in spans]

    def cache(c) -> KVCache:  # type: ignore[no-untyped-def]
        return KVCache.allocate(c, batch=1, frames=6, tokens_per_frame=4, sink_frames=3, device="cpu",
                                dtype=torch.float32, adaptive_sink_threshold=0.2)

    full, parts = cache(cfg), [cache(s.config) for s in stages]
    dit.encode_prompt(ctx, full.cross)
    for s, c in zip(stages, parts):
        s.encode_prompt(ctx, c.cross)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i in range(9):
            n = 2 if i == 0 else 1
            x = torch.randn(1, 16, n, 4, 4, generator=gen)
            t = torch.tensor([700.0 - 50 * i])
            v = dit(x, t, None, cache=full, block=full.begin_block(n))
            tt = t[:, None].expand(1, n)
            tokens = stages[0].embed(x)
            for s, c in zip(stages, parts):
                tokens = s.blocks_forward(tokens, tt, s.grid(tuple(x.shape)), c, c.begin_block(n))
            assert torch.allclose(stages[-1].head(tokens, tt, tuple(x.shape), x.dtype), v, atol=1e-5)


def _script(lora: str) -> dict[int, object]:
    """Commands before chunk k: a prompt change, a strength change, a LoRA switch, a reset."""
    return {3: SetPrompt("second look", 2), 5: SetStrength(0.5), 7: SetLora((LoraRef(lora, 1.0),)), 9: Reset()}


def _run(stream, script: dict[int, object], chunks: int) -> list:  # type: ignore[no-untyped-def]
    out, index = [], 0
    for k in range(chunks):
        if k in script:
            stream.apply(script[k])
        n = stream.frames_needed()
        out += stream.process(frames(index, n))
        index += n
    return out


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from livestyle.models.testing.lora import random_lora, write_lora

    root = tmp_path_factory.mktemp("loras")
    write_lora(root / "ink.safetensors", random_lora(TinyStack().dit_config, rank=2, seed=5), "kohya")
    return str(root)


@pytest.mark.parametrize(("gpus", "stream_batch"), [(2, True), (2, False), (3, True), (3, False)])
def test_stages_stream_the_one_process_frames(gpus: int, stream_batch: bool, lora_dir: str) -> None:
    cfg = _config(gpus, stream_batch)
    stack = TinyStack(lora_dir=lora_dir)
    chunks = 14
    ref = _run(stack(cfg), _script("ink"), chunks)
    stream = open_parallel(cfg, "tiny", opener=stack, layers=stack.layers)
    procs = _stages(stream)
    try:
        out = _run(stream, _script("ink"), chunks)
        deadline = time.monotonic() + 20
        while len(out) < len(ref) and time.monotonic() < deadline:
            time.sleep(0.05)
            out += stream.process([])
        stats = stream.stats()
    finally:
        stream.close()
    assert _gone(procs) == []  # close() waits for every stage
    assert [f.index for f in out] == [f.index for f in ref]
    assert len(ref) > 20  # the warm-up, the blend, the LoRA and the restart all streamed
    worst = max(int(np.abs(a.image.astype(int) - b.image.astype(int)).max()) for a, b in zip(out, ref))
    assert worst <= TOLERANCE, f"a frame differs by {worst}/255 from the one-process stream"
    assert stats["gpus"] == gpus and len(stats["stages"]) == gpus
    assert stats["loras"] == ["ink"]


def test_a_killed_stage_ends_the_stream_naming_it() -> None:
    cfg = _config(3, True)
    stream = open_parallel(cfg, "tiny", opener=TinyStack(), layers=3)
    procs = _stages(stream)
    try:
        assert len(procs) >= 3
        _run(stream, {}, 3)
        victim = next(p for p in stream._procs if p.name == "livestyle-stage-2")
        os.kill(victim.pid, signal.SIGKILL)
        with pytest.raises(StageFailedError) as err:
            deadline = time.monotonic() + 20
            index = 100
            while time.monotonic() < deadline:
                stream.process(frames(index, stream.frames_needed()))
                index += 4
                time.sleep(0.05)
    finally:
        stream.close()
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("stage 2 of 3 (blocks 2-2) died: killed by signal 9"), message
    assert _gone(procs) == []
