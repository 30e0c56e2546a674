"""StreamPipeline on CPU with tiny random models: chunking, timing metadata, determinism, prompt
transitions, the three KV-cache modes' invariants, live controls and bad input, long streams."""

from __future__ import annotations

import functools
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from livestyle.errors import ConfigError, ControlError
from livestyle.models.kv_cache import KVCache
from livestyle.models.taehv import StreamingTAEHV
from livestyle.models.testing.dit import random_dit
from livestyle.models.testing.stack import random_taehv, random_wan_vae
from livestyle.models.vae import StreamingWanVAE
from livestyle.engine.commands import (
    Reset,
    SetBypass,
    SetDecoder,
    SetPrompt,
    SetSeed,
    SetSize,
    SetSteps,
    SetStrength,
)
from livestyle.diffusion.family import FAMILY_PRESETS, FamilyConfig, family_from_mapping
from livestyle.engine.frames import Frame
from livestyle.diffusion.stream import StreamPipeline
from livestyle.diffusion.stream_state import Controls, StreamModels, schedule_for

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def _dit():  # type: ignore[no-untyped-def]
    return random_dit("tiny", seed=1)


@functools.cache
def _taehv():  # type: ignore[no-untyped-def]
    return random_taehv("tiny", seed=2)


@functools.cache
def _wan_vae():  # type: ignore[no-untyped-def]
    return random_wan_vae("tiny", seed=2)


def _prompt(text: str) -> torch.Tensor:
    """A stand-in umT5: a fixed random embedding per text (the real encoder is tested elsewhere)."""
    return torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(zlib.crc32(text.encode())))


def build(family: str | FamilyConfig = "sdv2", *, steps: int = 2, strength: float = 0.8, seed: int = 7, size: int = 16,
          codec: str = "taehv", **overrides: object) -> StreamPipeline:
    fam = FAMILY_PRESETS[family] if isinstance(family, str) else family
    fam = fam.with_overrides(**overrides) if overrides else fam
    normalized = fam.latents == "normalized"
    tae = _taehv()
    taehv_pair = (lambda: StreamingTAEHV(tae, normalize_latents=normalized), lambda: StreamingTAEHV(tae))
    if codec == "wan":
        vae = _wan_vae()
        codecs = {"wan": (lambda: StreamingWanVAE(vae, normalize_latents=normalized), lambda: StreamingWanVAE(vae)),
                  "tiny": taehv_pair}
    else:
        codecs = {"wan": taehv_pair}
    models = StreamModels(dit=_dit(), prompt_encoder=_prompt, codecs=codecs, prompt_cached=lambda t: True,  # type: ignore[arg-type]
                          encode_image=lambda x: StreamingTAEHV(tae, normalize_latents=normalized).encode(x))
    controls = Controls(prompt="a watercolor", strength=strength, steps=steps, seed=seed, width=size, height=size,
                        decoder="wan")
    return StreamPipeline(models, fam, controls)


def frames(start: int, n: int, size: int = 16) -> list[Frame]:
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for i in range(start, start + n):
        img = np.stack([(xx * 13 + i * 9) % 256, (yy * 11 + i * 5) % 256, ((xx + yy) * 7 + i * 17) % 256], -1)
        out.append(Frame(img.astype(np.uint8), pts=i * 1500, time_base=Fraction(1, 90000), capture_time=100.0 + i, index=i))
    return out


def run(pipe: StreamPipeline, chunks: int, start: int = 0, size: int = 16) -> tuple[list[Frame], int]:
    out: list[Frame] = []
    i = start
    with torch.no_grad():
        for _ in range(chunks):
            n = pipe.frames_needed()
            out += pipe.process(frames(i, n, size))
            i += n
    return out, i


class DiTCalls:
    """Records every transformer call of a pipeline (inputs, keyword arguments, output).

    The tiny DiT is shared by every pipeline of this module: record one pipeline at a time.
    """

    def __init__(self, pipe: StreamPipeline) -> None:
        self.calls: list[dict] = []
        self.handle = pipe.models.dit.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs, output):  # type: ignore[no-untyped-def]
        ctx = args[2] if len(args) > 2 else kwargs.get("context")
        block = kwargs.get("block")
        self.calls.append({"x": args[0].clone(), "t": args[1].clone(), "ctx": ctx.clone(), "kw": dict(kwargs),
                           "positions": None if block is None else block.positions.clone(),
                           "frames": None if block is None else block.frames.clone(), "out": output.clone()})

    def close(self) -> None:
        self.handle.remove()


# ---------------------------------------------------------------------------------- configs


def test_every_registry_pipeline_mapping_parses() -> None:
    seen = {}
    for path in sorted((ROOT / "configs" / "models").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        if "pipeline" in data:
            seen[path.stem] = family_from_mapping(data["pipeline"], source=path.name)
    assert seen["sdv2-1.3b"].kv_mode == "stream_batch" and seen["sdv2-1.3b"].latents == "raw"
    assert seen["self-forcing-1.3b"].kv_mode == "rerun" and seen["longlive-1.3b"].recache_on_prompt
    assert seen["krea-14b"].kv_mode == "recompute" and seen["krea-14b"].attention_bias == 0.3
    assert seen["tiny"].first_chunk_frames == 5 and seen["tiny"].chunk_frames == 4
    assert seen["krea-14b"].first_chunk_frames == 9 and seen["krea-14b"].chunk_frames == 12


def test_family_mapping_errors_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"x.yaml: unknown pipeline key 'kv_modes'; known keys: family, kv_mode"):
        family_from_mapping({"family": "sdv2", "kv_modes": "rerun"}, source="x.yaml")
    with pytest.raises(ConfigError, match=r"x.yaml: pipeline.family is 'sdv3'; use one of sdv2, self-forcing, longlive, krea"):
        family_from_mapping({"family": "sdv3"}, source="x.yaml")
    with pytest.raises(ConfigError, match=r"setting 'kv_mode' is 'ring'; use one of stream_batch, rerun, recompute"):
        family_from_mapping({"family": "sdv2", "kv_mode": "ring"}, source="x.yaml")
    with pytest.raises(ConfigError, match=r"setting 'shift' must be a number, got 'big'"):
        family_from_mapping({"family": "sdv2", "shift": "big"}, source="x.yaml")
    with pytest.raises(ConfigError, match=r"x.yaml has no 'pipeline:' mapping"):
        family_from_mapping(None, source="x.yaml")
    with pytest.raises(ConfigError, match=r"x.yaml: model pipeline setting 'stream_batch' false only applies to kv_mode stream_batch"):
        family_from_mapping({"family": "krea", "stream_batch": False}, source="x.yaml")


def test_schedules_per_family() -> None:
    assert schedule_for(FAMILY_PRESETS["sdv2"], 2, 0.8) == [700.0, 500.0]
    assert schedule_for(FAMILY_PRESETS["sdv2"], 4, 0.5) == [400.0, 500.0, 400.0, 200.0]
    sf = schedule_for(FAMILY_PRESETS["self-forcing"], 4, 1.0)
    assert sf == pytest.approx([1000.0, 937.5, 833.333, 625.0], abs=1e-3)
    krea = schedule_for(FAMILY_PRESETS["krea"], 4, 0.7)
    assert krea == pytest.approx([921.05, 813.55, 603.0, 0.0], abs=1e-2)


# ---------------------------------------------------------------------------------- chunks and timing


def test_sdv2_chunks_and_stream_batch_delay_keep_input_timing() -> None:
    pipe = build(steps=3)
    assert pipe.frames_needed() == 5
    got = []
    with torch.no_grad():
        i = 0
        for chunk in range(6):
            n = pipe.frames_needed()
            assert n == (5 if chunk == 0 else 4)
            got.append(pipe.process(frames(i, n)))
            i += n
    # warm-up chunk comes out at once; then 3 slots -> the chunk entering now leaves 2 chunks later
    assert [len(g) for g in got] == [5, 0, 0, 4, 4, 4]
    out = [f for g in got for f in g]
    assert [f.index for f in out] == list(range(17))
    assert [f.pts for f in out] == [i * 1500 for i in range(17)]
    assert [f.capture_time for f in out] == [100.0 + i for i in range(17)]
    assert all(f.image.shape == (16, 16, 3) and f.image.dtype == np.uint8 for f in out)
    s = pipe.stats()
    assert s["latency_chunks"] == 3 and s["frames_in"] == 25 and s["frames_out"] == 17
    assert set(s["stages_ms"]) == {"encode", "denoise", "decode"}


@pytest.mark.parametrize("family", ["self-forcing", "krea"])
def test_three_latent_families_take_9_then_12_frames(family: str) -> None:
    pipe = build(family)
    assert pipe.frames_needed() == 9
    out, n = run(pipe, 3)
    assert pipe.frames_needed() == 12
    assert n == 33 and [f.index for f in out] == list(range(33))


def test_output_is_resized_back_to_the_source_size() -> None:
    pipe = build(size=16)
    with torch.no_grad():
        out = pipe.process(frames(0, 5, size=32))
    assert [f.image.shape for f in out] == [(32, 32, 3)] * 5


# ---------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("family", ["sdv2", "self-forcing", "krea"])
def test_same_seed_same_frames_other_seed_other_frames(family: str) -> None:
    chunks = 4 if family == "sdv2" else 3
    a, _ = run(build(family, seed=11), chunks)
    b, _ = run(build(family, seed=11), chunks)
    c, _ = run(build(family, seed=12), chunks)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert not all(np.array_equal(x.image, z.image) for x, z in zip(a, c))
    # reset() starts the same stream again
    pipe = build(family, seed=11)
    run(pipe, 2)
    pipe.apply(Reset())
    again, _ = run(pipe, chunks)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, again))


def test_set_seed_applies_between_chunks() -> None:
    pipe = build(seed=1)
    run(pipe, 2)
    pipe.apply(SetSeed(5))
    assert pipe.stats()["seed"] == 5
    with pytest.raises(ControlError, match="seed must be >= 0, got -1"):
        pipe.apply(SetSeed(-1))


# ---------------------------------------------------------------------------------- prompts


def test_prompt_switch_lands_at_a_chunk_boundary_and_blends_over_n_chunks() -> None:
    base_pipe = build("self-forcing")
    base = DiTCalls(base_pipe)
    run(base_pipe, 5)
    base.close()
    pipe = build("self-forcing")
    calls = DiTCalls(pipe)
    _, i = run(pipe, 2)
    pipe.apply(SetPrompt("neon city", transition_chunks=2))
    assert pipe.stats()["transition"] == (0, 2)
    run(pipe, 3, start=i)
    calls.close()
    # the transformer calls of the chunks before the switch are untouched; the next chunk's differ
    for before, after in zip(base.calls[:6], calls.calls[:6]):
        assert torch.equal(before["out"], after["out"])
    assert not torch.allclose(base.calls[6]["out"], calls.calls[6]["out"])
    # conditioning per chunk: old, old, half-way, new, new — every call of a chunk (2 steps and the
    # clean re-run) sees the same context
    a, b = _prompt("a watercolor"), _prompt("neon city")
    assert len(calls.calls) == 15
    for k, want in enumerate([a, a, 0.5 * a + 0.5 * b, b, b]):
        for call in calls.calls[3 * k : 3 * k + 3]:
            torch.testing.assert_close(call["ctx"], want)
    assert pipe.stats()["transition"] is None and pipe.stats()["prompt"] == "neon city"


# ---------------------------------------------------------------------------------- cache modes


def test_stream_batch_one_call_per_chunk_with_a_cache_row_per_slot() -> None:
    pipe = build(steps=3)
    calls = DiTCalls(pipe)
    run(pipe, 6)
    calls.close()
    # warm-up chunk: 3 sequential calls at batch 1; afterwards ONE call per chunk over 3 slots
    assert [c["x"].shape[0] for c in calls.calls] == [1, 1, 1, 3, 3, 3, 3, 3]
    assert [c["x"].shape[2] for c in calls.calls] == [2, 2, 2, 1, 1, 1, 1, 1]
    for c in calls.calls[3:]:
        assert c["t"][1:].tolist() == [500.0, 400.0]  # later slots sit at the later steps
        assert isinstance(c["kw"]["cache"], KVCache) and c["kw"]["cache"].batch == 3
    # each row has its own positions: row j lags j chunks (rows without a chunk yet stay at frame 2)
    assert pipe.stats()["kv_next_frame"] == [7, 6, 5]


def test_sdv2_without_stream_batch_runs_steps_in_turn_on_one_slot_with_no_lag() -> None:
    """``stream_batch: false`` (upstream single-wo): every chunk takes ``steps`` calls at batch 1 on
    the same slot (positions and frames unchanged between its steps), frames come back at once."""
    pipe = build(steps=3, stream_batch=False)
    calls = DiTCalls(pipe)
    out, fed = run(pipe, 5)
    calls.close()
    assert len(out) == fed and [f.index for f in out] == list(range(fed))  # no lag
    assert [c["x"].shape[0] for c in calls.calls] == [1] * 15
    assert [c["x"].shape[2] for c in calls.calls] == [2] * 3 + [1] * 12
    for chunk in range(1, 5):
        steps = calls.calls[3 * chunk : 3 * chunk + 3]
        assert steps[0]["frames"].tolist() == steps[2]["frames"].tolist() == [[1 + chunk]]
        assert steps[0]["positions"].tolist() == steps[2]["positions"].tolist()
        assert [float(c["t"][0]) for c in steps[1:]] == [500.0, 400.0]
        assert steps[0]["kw"]["cache"].batch == 1
    stats = pipe.stats()
    assert stats["kv_next_frame"] == [6] and stats["latency_chunks"] == 1 and stats["stream_batch"] is False
    # changing steps keeps the stream (no slot batch to resize): the next chunk continues at frame 6
    pipe.apply(SetSteps(1))
    run(pipe, 1, start=fed)
    assert pipe.counters["resets"] == 0 and pipe.stats()["kv_next_frame"] == [7]


def test_rerun_cache_equals_the_block_causal_full_pass() -> None:
    pipe = build("self-forcing", steps=2)
    calls = DiTCalls(pipe)
    run(pipe, 3)
    calls.close()
    assert len(calls.calls) == 9  # per chunk: 2 steps + 1 clean re-run
    for k in range(3):
        rerun = calls.calls[3 * k + 2]
        assert rerun["t"].tolist() == [0.0]  # context_noise
        assert torch.equal(rerun["frames"], calls.calls[3 * k]["frames"])  # same slots as the block's steps
        assert torch.equal(rerun["positions"], calls.calls[3 * k]["positions"])
    # re-runs overwrite, they do not advance: 3 blocks of 3 frames
    assert pipe.stats()["kv_next_frame"] == [9]
    clean = torch.cat([calls.calls[2]["x"], calls.calls[5]["x"]], dim=2)  # re-run inputs = clean latents
    for step in (6, 7):
        gen = calls.calls[step]
        x = torch.cat([clean, gen["x"]], dim=2)
        t = torch.cat([torch.zeros(1, 6), gen["t"].expand(1, 3)], dim=1)
        with torch.no_grad():
            full = _dit()(x, t, gen["ctx"], causal_block_frames=3)
        torch.testing.assert_close(full[:, :, 6:], gen["out"], rtol=1e-4, atol=1e-4)


def test_recompute_rebuilds_the_cache_from_clean_context_with_bounded_positions() -> None:
    pipe = build("krea", steps=2, attention_bias=1.0)
    calls = DiTCalls(pipe)
    positions = []
    with torch.no_grad():
        i = 0
        for _ in range(4):
            n = pipe.frames_needed()
            pipe.process(frames(i, n))
            i += n
            positions.append(pipe.stats()["kv_next_position"])
    calls.close()
    # chunk 0: 2 calls; later chunks: 1 recompute (t=0, block-causal) + 2 calls
    assert len(calls.calls) == 2 + 3 * 3
    assert positions == [[3], [6], [6], [6]]  # context at 0..2, the block always at 3..5
    for k in range(1, 4):
        rec, gen, last = calls.calls[3 * k - 1], calls.calls[3 * k], calls.calls[3 * k - 2]
        assert rec["t"].tolist() == [0.0] and rec["kw"]["causal_block_frames"] == 3
        # the context's last 2 frames are the previous block's clean result (x0 of its last step)
        from livestyle.models.scheduler import sigma_for_timestep, x0_from_velocity

        prev_x0 = x0_from_velocity(last["x"], last["out"], sigma_for_timestep(last["t"], 5.0))
        torch.testing.assert_close(rec["x"][:, :, 1:], prev_x0[:, :, 1:], rtol=1e-5, atol=1e-5)
        # generating against the recomputed cache == one block-causal pass over [context, block]
        x = torch.cat([rec["x"], gen["x"]], dim=2)
        t = torch.cat([torch.zeros(1, 3), gen["t"].expand(1, 3)], dim=1)
        with torch.no_grad():
            full = _dit()(x, t, gen["ctx"], causal_block_frames=3)
        torch.testing.assert_close(full[:, :, 3:], gen["out"], rtol=1e-4, atol=1e-4)


def test_krea_attention_bias_changes_generation_but_not_recompute() -> None:
    biased = build("krea", steps=2)
    cb = DiTCalls(biased)
    run(biased, 2)
    cb.close()
    plain = build("krea", steps=2, attention_bias=1.0)
    cp = DiTCalls(plain)
    run(plain, 2)
    cp.close()
    torch.testing.assert_close(cb.calls[2]["out"], cp.calls[2]["out"])  # recompute: no bias
    assert cb.calls[2]["kw"].get("kv_bias") is None and cb.calls[3]["kw"]["kv_bias"] == 0.3
    assert not torch.allclose(cb.calls[3]["out"], cp.calls[3]["out"])


def test_longlive_recaches_kv_with_the_new_prompt() -> None:
    pipe = build("longlive", steps=2)
    calls = DiTCalls(pipe)
    _, i = run(pipe, 2)
    pipe.apply(SetPrompt("neon city", transition_chunks=0))
    run(pipe, 1, start=i)
    calls.close()
    recache = calls.calls[6]
    assert recache["kw"].get("causal_block_frames") == 3 and recache["t"].tolist() == [0.0]
    torch.testing.assert_close(recache["ctx"], _prompt("neon city"))
    # the non-sink clean frames so far (block 1), re-run at their own slots and positions
    torch.testing.assert_close(recache["x"], calls.calls[5]["x"])
    assert recache["positions"].tolist() == [[3, 4, 5]] and recache["frames"].tolist() == [[3, 4, 5]]
    assert pipe.stats()["kv_next_frame"] == [9]


# ---------------------------------------------------------------------------------- controls and bad input


def test_control_values_out_of_range_are_one_line_control_errors() -> None:
    pipe = build()
    with pytest.raises(ControlError, match=r"strength 1.5 is outside \[0, 1\]; 0 keeps the input, 1 ignores it"):
        pipe.apply(SetStrength(1.5))
    with pytest.raises(ControlError, match=r"strength -0.1 is outside \[0, 1\]"):
        pipe.apply(SetStrength(-0.1))
    with pytest.raises(ControlError, match=r"steps 5 is not supported by this model; use 1..4"):
        pipe.apply(SetSteps(5))
    with pytest.raises(ControlError, match=r"steps 0 is not supported by this model; use 1..4"):
        pipe.apply(SetSteps(0))
    with pytest.raises(ControlError, match=r"decoder 'tiny' is not available for this model; use one of wan"):
        pipe.apply(SetDecoder("tiny"))
    with pytest.raises(ControlError, match=r"size 100x64 is not a positive multiple of 16; use e.g. 832x480"):
        pipe.apply(SetSize(100, 64))
    with pytest.raises(ControlError, match=r"object is not a command the stream generator understands"):
        pipe.apply(object())
    s = pipe.stats()
    assert (s["strength"], s["steps"], s["decoder"], s["size"]) == (0.8, 2, "wan", "16x16")


def test_strength_steps_bypass_size_apply_between_chunks() -> None:
    pipe = build(steps=2)
    run(pipe, 2)
    pipe.apply(SetStrength(0.5))
    run(pipe, 1, start=9)
    pipe.apply(SetSteps(1))  # stream batch is sized by steps: the stream restarts
    assert pipe.frames_needed() == 5 and pipe.stats()["steps"] == 1
    out, _ = run(pipe, 2, start=13)
    assert len(out) == 9  # one step: no delay
    pipe.apply(SetBypass(True))
    raw = frames(50, 1)
    assert pipe.frames_needed() == 1 and pipe.process(raw) == raw
    pipe.apply(SetBypass(None))
    assert pipe.frames_needed() == 5 and not pipe.stats()["bypass"]
    pipe.apply(SetSize(32, 32))
    with torch.no_grad():
        out = pipe.process(frames(60, 5))
    assert pipe.stats()["size"] == "32x32" and len(out) == 5


def test_frame_size_change_mid_stream_restarts_cleanly() -> None:
    pipe = build(steps=1)
    run(pipe, 2)
    resets = pipe.stats()["resets"]
    big = frames(9, 4, size=32)
    with torch.no_grad():
        out = pipe.process(big)
    assert out == big  # the chunk cut for the old stream passes through
    assert pipe.stats()["resets"] == resets + 1 and pipe.frames_needed() == 5
    with torch.no_grad():
        out = pipe.process(frames(13, 5, size=32))
    assert [f.image.shape for f in out] == [(32, 32, 3)] * 5


def test_nonfinite_latents_reset_the_stream_and_it_keeps_going() -> None:
    pipe = build("self-forcing", steps=1)
    run(pipe, 1)
    poisoned = {"left": 1}

    def poison(module, args, kwargs, output):  # type: ignore[no-untyped-def]
        if poisoned["left"]:
            poisoned["left"] -= 1
            return torch.full_like(output, float("nan"))
        return output

    handle = pipe.models.dit.register_forward_hook(poison, with_kwargs=True)
    try:
        src = frames(9, 12)
        with torch.no_grad():
            out = pipe.process(src)
        assert out == src  # raw input for the broken chunk
        s = pipe.stats()
        assert s["nonfinite_resets"] == 1 and "non-finite" in s["last_error"]
        assert pipe.frames_needed() == 9  # a fresh stream
        more, _ = run(pipe, 2, start=21)
        assert len(more) == 21 and all(f.image.std() > 0 for f in more)
    finally:
        handle.remove()


def test_out_of_memory_steps_down_then_falls_back_to_bypass() -> None:
    pipe = build(steps=2)

    def oom(module, args, kwargs):  # type: ignore[no-untyped-def]
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    handle = pipe.models.dit.register_forward_pre_hook(oom, with_kwargs=True)
    try:
        src = frames(0, 5)
        assert pipe.process(src) == src
        s = pipe.stats()
        assert s["steps"] == 1 and s["oom"] == 1 and s["last_error"] == "CUDA out of memory; stepped down to 1 steps"
        assert pipe.process(src) == src
        s = pipe.stats()
        assert s["bypass"] and s["last_error"].startswith("CUDA out of memory at 1 step; showing the raw input (bypass)")
    finally:
        handle.remove()


# ---------------------------------------------------------------------------------- long streams


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


@pytest.mark.slow
def test_two_thousand_chunks_flat_memory_and_bounded_positions() -> None:
    pipe = build(steps=2)
    max_pos = 0
    rss = []
    with torch.no_grad():
        i = 0
        for chunk in range(2000):
            n = pipe.frames_needed()
            out = pipe.process(frames(i, n))
            i += n
            if chunk == 1:
                assert out == []  # the stream batch is filling
            elif chunk >= 2:
                assert [f.index for f in out] == list(range(i - n - 4, i - 4))  # one chunk behind, always
            s = pipe._state
            assert len(s.in_flight) <= 1 and len(s.clean) == 0 and len(s.decoded) == 0
            if chunk % 100 == 99:
                st = pipe.stats()
                max_pos = max(max_pos, *st["kv_next_position"])
                rss.append(_rss_bytes())
    st = pipe.stats()
    assert st["chunks"] == 2000 and st["frames_out"] == st["frames_in"] - 4
    assert max_pos <= 50  # SDV2 t_refresh re-bases positions into 5..49
    assert st["kv_next_frame"][0] > 1900  # frames keep counting; positions do not
    assert all(len(r) <= 512 for r in pipe.timer._rings.values())
    growth = rss[-1] - rss[2]
    assert growth < 16 * 2**20, f"RSS grew {growth / 2**20:.1f} MiB over 1700 chunks"


def test_rerun_family_positions_are_rebased_while_frames_keep_counting() -> None:
    pipe = build("self-forcing", steps=1, rope_refresh_frames=30)
    positions = []
    with torch.no_grad():
        i = 0
        for _ in range(16):
            n = pipe.frames_needed()
            out = pipe.process(frames(i, n))
            assert [f.index for f in out] == list(range(i, i + n))
            i += n
            positions.append(pipe.stats()["kv_next_position"][0])
    assert pipe.stats()["kv_next_frame"] == [48]
    assert max(positions) <= 30 + 3 and positions[-1] < 30  # restarts at 21 - 3 = 18 once it reaches 30
    assert 21 in positions  # 18 + 3: a re-based block
