"""Shared pytest setup: keep CPU tests small, skip GPU tests without CUDA, and the fixtures that
test files in more than one folder use. Plain helpers (no fixtures) live beside this file:
fakes.py, host_helpers.py, media_helpers.py, host_canary.py."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BROWSER = Path(__file__).parent / "browser"  # netns.py (a thread in a network namespace) lives there

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LIVESTYLE_STARTUP_HISTORY", "off")  # no "about N s" from earlier runs in the output
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


# Without a GPU the fused Triton kernels run under Triton's CPU interpreter (test_fused_kernels.py);
# it must be chosen before anything imports triton.
if not _cuda_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# a kernel that fails must fail its test, not fall back to the reference it is compared with
os.environ.setdefault("LIVESTYLE_FUSED_STRICT", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _torch_single_thread() -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def netns() -> Iterator[Any]:
    """A worker thread in a fresh network namespace (lo with 127.0.0.1 and 127.0.0.2): a
    ``browser/netns.py`` ``NetnsRunner``, closed after the module. Skips where namespaces cannot be
    made (not root, no ``ip``). Used by browser/ tests and test_audio_webrtc.py."""
    if str(BROWSER) not in sys.path:
        sys.path.insert(0, str(BROWSER))
    from netns import NetnsRunner, netns_unavailable_reason

    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(f"no network namespace: {reason}")
    runner = NetnsRunner()
    yield runner
    runner.close()
