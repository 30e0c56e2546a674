"""Shared pytest setup: keep CPU tests small and skip GPU tests without CUDA."""

from __future__ import annotations

import os

import pytest

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
