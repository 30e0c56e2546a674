"""Plant realistic one-line bugs, one at a time, in a temporary copy of the repository and run the
tests that should catch each; report caught / survived per bug. Run by hand, not in CI:

    .venv/bin/python scripts/mutation_check.py            # every mutation
    .venv/bin/python scripts/mutation_check.py gelu motion # only these (names or prefixes)
    .venv/bin/python scripts/mutation_check.py --list

The copy holds the working tree (tracked files plus untracked ones git does not ignore), so
uncommitted edits are checked too. Tests run with this interpreter and ``PYTHONPATH`` set to the
copy, so the copy's ``livestyle`` is imported, not the editable install (checked before anything
runs). First each mutation's tests run unmutated and must pass (up to ``--baseline-tries`` runs: the
delivery tests run in real time and can miss a deadline on a loaded machine); then each mutation is applied by an
exact text replacement that must match once (a mutation whose text is gone, e.g. after a refactor,
is reported as ``stale``, never as caught). A bug is ``caught`` when pytest exits 1 (a test
failed); exit 0 is ``survived``; anything else (collection error, crash, timeout) is ``error``.
The last line is a JSON summary; the exit status is 0 only when every selected bug was caught.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "gelu", "exact (erf) GELU instead of the tanh approximation in the DiT FFN",
        "livestyle/models/dit.py",
        'nn.GELU(approximate="tanh"), nn.Linear(cfg.ffn_dim, dim)',
        "nn.GELU(), nn.Linear(cfg.ffn_dim, dim)",
        ("tests/test_dit_parity.py",),
    ),
    Mutation(
        "motion", "motion distance: mean over the chunk's frame steps instead of the max",
        "livestyle/diffusion/noise.py",
        "diff.mean(dim=(0, 1, 3, 4)).sqrt().max() / norm",
        "diff.mean(dim=(0, 1, 3, 4)).sqrt().mean() / norm",
        ("tests/test_motion.py",
         "tests/test_pipeline_parity.py::test_motion_inside_the_controllers_range_matches_streamdiffusionv2_reference"),
    ),
    Mutation(
        "chained-due", "delivery: due times chained to the previous frame's due + period, not capture + D",
        "livestyle/engine/delivery.py",
        "            due = capture + offset\n",
        "            due = capture + offset if prev is None else prev + self.period\n",
        ("tests/test_delivery.py",),
    ),
    Mutation(
        "half-rate", "delivery: pacing at half the frame rate (period doubled)",
        "livestyle/engine/delivery.py",
        "self.period = 1.0 / fps",
        "self.period = 2.0 / fps",
        ("tests/test_delivery.py",),
    ),
    Mutation(
        "refresh-late", "KV cache: t_refresh re-base one block late (> instead of >=)",
        "livestyle/models/kv_cache.py",
        "torch.where(self.next_pos >= refresh,",
        "torch.where(self.next_pos > refresh,",
        ("tests/test_kv_cache.py",),
    ),
    Mutation(
        "rebase-zero", "KV cache: a re-based block restarts at position 0, not frames - n",
        "livestyle/models/kv_cache.py",
        "else max(self.frames - n, 0)",
        "else 0",
        ("tests/test_kv_cache.py",),
    ),
    Mutation(
        "modnet-ibnorm", "MODNet: IBNorm concatenates the instance-norm half first",
        "livestyle/models/segmentation.py",
        "return torch.cat((bn_x, in_x), 1)",
        "return torch.cat((in_x, bn_x), 1)",
        ("tests/test_masks_person.py",),
    ),
    Mutation(
        "modnet-upsample", "MODNet: align_corners=True in the branches' 2x upsampling",
        "livestyle/models/segmentation.py",
        'F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)',
        'F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)',
        ("tests/test_masks_person.py",),
    ),
    Mutation(
        "taehv-tgrow-order", "TAEHV: TGrow hands out its frames latest first",
        "livestyle/models/taehv.py",
        "return self.conv(x).reshape(nt * self.stride, c, h, w)",
        "return self.conv(x).reshape(nt, self.stride, c, h, w).flip(1).reshape(nt * self.stride, c, h, w)",
        ("tests/test_taehv.py::test_matches_the_upstream_taehv_on_shared_random_weights",),
    ),
    Mutation(
        "taehv-clamp", "TAEHV: a hard clamp to [-3, 3] instead of the soft 3*tanh(x/3)",
        "livestyle/models/taehv.py",
        "return torch.tanh(x / 3) * 3",
        "return x.clamp(-3, 3)",
        ("tests/test_taehv.py::test_matches_the_upstream_taehv_on_shared_random_weights",),
    ),
    Mutation(
        "audio-no-pts", "audio sink: chunks appended back to back, their pts ignored",
        "livestyle/output/audio.py",
        "        if abs(start - end) <= self._jitter:\n",
        "        if True:\n",
        ("tests/test_av_sync.py",),
    ),
)


def copy_tree(dest: Path) -> None:
    """The working tree's files (tracked and untracked-not-ignored) copied under ``dest``."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True).stdout
    for rel in filter(None, out.decode().split("\0")):
        src = ROOT / rel
        if not src.is_file():  # deleted in the working tree, or a submodule
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, float, str]:
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:xdist", "-p", "no:cacheprovider", *tests]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return -1, time.monotonic() - t0, "timeout"
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    return proc.returncode, time.monotonic() - t0, (failed[0] if failed else (lines[-1] if lines else proc.stderr[-300:]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="mutations to run (name or prefix); default: all")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per pytest run")
    ap.add_argument("--baseline-tries", type=int, default=3, help="runs of the unmutated tests before giving up")
    args = ap.parse_args(argv)
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:16} {m.path:36} {m.what}")
        return 0
    chosen = [m for m in MUTATIONS if not args.names or any(m.name.startswith(n) for n in args.names)]
    if not chosen:
        ap.error(f"no mutation matches {args.names}; see --list")

    with tempfile.TemporaryDirectory(prefix="livestyle-mutants-") as tmp:
        copy = Path(tmp) / "repo"
        copy_tree(copy)
        probe = subprocess.run([sys.executable, "-c", "import livestyle; print(livestyle.__file__)"], cwd=copy,
                               env=dict(os.environ, PYTHONPATH=str(copy)), capture_output=True, text=True, check=False)
        if not probe.stdout.strip().startswith(str(copy)):
            print(f"the copy's livestyle is not the one imported: {probe.stdout.strip() or probe.stderr}")
            return 2
        for tests in dict.fromkeys(m.tests for m in chosen):  # each test set as the mutants run it
            for attempt in range(1, args.baseline_tries + 1):  # real-time tests may miss a deadline under load
                rc, secs, last = run_tests(copy, tests, args.timeout)
                print(f"baseline {' '.join(tests)[:60]:60} try {attempt}  rc={rc}  {secs:5.1f}s  {last}", flush=True)
                if rc == 0:
                    break
            else:
                print("the unmutated tests do not pass; fix that first")
                return 2
        results: dict[str, str] = {}
        for m in chosen:
            target = copy / m.path
            original = target.read_text()
            if original.count(m.old) != 1:
                results[m.name] = "stale"
                print(f"{m.name:16} STALE     the text to replace occurs {original.count(m.old)} times in {m.path}",
                      flush=True)
                continue
            target.write_text(original.replace(m.old, m.new))
            try:
                rc, secs, last = run_tests(copy, m.tests, args.timeout)
            finally:
                target.write_text(original)
            verdict = "caught" if rc == 1 else "survived" if rc == 0 else "error"
            results[m.name] = verdict
            print(f"{m.name:16} {verdict.upper():9} {secs:5.1f}s  {m.what}\n{'':27}{last}", flush=True)
    caught = sum(v == "caught" for v in results.values())
    print(json.dumps({"caught": caught, "total": len(results),
                      "survived": [k for k, v in results.items() if v == "survived"],
                      "other": {k: v for k, v in results.items() if v not in ("caught", "survived")}}))
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
