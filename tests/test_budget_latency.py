"""``livestyle budget``'s glass-to-glass prediction against what the real Runner delivers.

The planner's latency model (``planning.budget.glass_to_glass_ms``) is given the measured spread
of a synthetic generator's chunk times (median, p90, p95) and must predict the p50 and the p95 of
the glass to glass the real Runner (paced source, real threads, the delivery scheduler, a sink)
measures for it, within 15 %: a fixed chunk time, a jittery one, one slower than the others, a
stream batch's one-chunk lag, and a generator whose every tenth chunk is 50 ms late (the p95
comes from the spread, not the median).
"""

from __future__ import annotations

import numpy as np
import pytest
from fakes import StampSink
from host_canary import HostCanary

from livestyle.engine.runner import Runner
from livestyle.engine.synthetic import SyntheticGenerator
from livestyle.ingest.pattern import PatternSource
from livestyle.planning.budget import glass_to_glass_ms

FPS = 30.0
SIZE = (64, 48)
CASES = {
    "fixed 40 ms": {"base_ms": 40.0},
    "40 +- 30 ms": {"base_ms": 40.0, "jitter_ms": 30.0},
    "fixed 90 ms": {"base_ms": 90.0},
    "one chunk of lag": {"base_ms": 40.0, "lag_chunks": 1},
    "every 10th chunk +50 ms": {"base_ms": 40.0, "stalls": {k: 0.05 for k in range(10, 400, 10)}},
}


@pytest.mark.parametrize("case", list(CASES))
def test_predicted_glass_to_glass_p50_and_p95_match_the_runner_within_15_percent(case: str) -> None:
    gen = SyntheticGenerator(chunk_frames=4, ms_per_step=0.0, seed=1, **CASES[case])  # type: ignore[arg-type]
    source = PatternSource(SIZE, FPS, pace=True, max_frames=int(8 * FPS))
    sink = StampSink()
    with HostCanary() as canary:
        Runner(source, gen, [sink], size=SIZE, fps=FPS).run()
    t0 = sink.rows[0][2]
    # after the first 2 s (the offset is learned), leaving out frames the machine froze in flight
    g2g = [1000 * (w - c) for _, c, w in sink.rows if w >= t0 + 2.0 and not canary.explains(c, w, 1.0 / FPS)]
    assert len(g2g) >= 60, canary.holds
    calls = np.array(gen.calls_ms[5:])
    median, p90, p95 = np.percentile(calls, [50, 90, 95])
    want50, want95 = glass_to_glass_ms(p90, p95, chunk_frames=4, input_fps=FPS, in_flight=1 + gen.lag_chunks,
                                       chunk_ms=median)
    got50, got95 = np.percentile(g2g, [50, 95])
    assert want50 == pytest.approx(got50, rel=0.15), (got50, want50)
    assert want95 == pytest.approx(got95, rel=0.15), (got95, want95, median, p90, p95)
    if case.startswith("every"):
        assert got95 > got50 + 10 and want95 > want50 + 10  # a tail the median alone would not predict
