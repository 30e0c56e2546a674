"""LiteRT (``ai-edge-litert``, Google's TensorFlow Lite runtime on PyPI): detection and one network.

LiteRT is an optional dependency (the ``effects`` extra). It is detected once here
(:func:`litert_available`, :func:`override_litert` for tests); a missing runtime is logged, and
``--mask person`` then uses MODNet. :class:`LiteRTNet` wraps one loaded ``.tflite`` file with one
float32 input, on ``threads`` CPU threads (XNNPACK kernels).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from livestyle.errors import ModelLoadError
from livestyle.optional import require

__all__ = ["LiteRTNet", "litert_available", "load_litert_net", "override_litert"]

log = logging.getLogger(__name__)

_override: bool | None = None


@functools.cache
def _probe_litert() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError as exc:
        log.info("LiteRT is not installed (%s): --mask person uses MODNet; pip install 'livestyle[effects]' for the fast mask", exc)
        return False
    return True


def litert_available() -> bool:
    """Whether ``ai_edge_litert`` imports (checked once per process), unless overridden."""
    return _probe_litert() if _override is None else _override


def override_litert(available: bool | None) -> None:
    """Pretend LiteRT is (``True``) or is not (``False``) installed; ``None`` restores detection."""
    global _override
    _override = available


class LiteRTNet:
    """One loaded network with a single float32 input of shape ``input_shape``.

    ``run`` is guarded by a lock, so calls from the mask thread and the runner's bypass path never
    overlap inside the interpreter (which is not thread-safe).
    """

    def __init__(self, interpreter: Any, path: Path) -> None:
        self.path = path
        self._interpreter = interpreter
        inp = interpreter.get_input_details()
        if len(inp) != 1 or inp[0]["dtype"] != np.float32:
            raise ModelLoadError(f"{path}: expected one float32 input, found {[(list(d['shape']), d['dtype'].__name__) for d in inp]}")
        self.input_shape: tuple[int, ...] = tuple(int(v) for v in inp[0]["shape"])
        self._in = int(inp[0]["index"])
        self.outputs: dict[str, tuple[int, tuple[int, ...]]] = {
            str(d["name"]): (int(d["index"]), tuple(int(v) for v in d["shape"])) for d in interpreter.get_output_details()
        }
        self._lock = threading.Lock()

    def run(self, x: np.ndarray, outputs: tuple[str, ...]) -> list[np.ndarray]:
        """Run on ``x`` (float32, ``input_shape``); return copies of the named outputs."""
        assert x.shape == self.input_shape and x.dtype == np.float32, f"{x.shape=} {x.dtype=} {self.input_shape=}"
        with self._lock:
            self._interpreter.set_tensor(self._in, x)
            self._interpreter.invoke()
            return [self._interpreter.get_tensor(self.outputs[name][0]) for name in outputs]


def load_litert_net(path: str | Path, threads: int = 1) -> LiteRTNet:
    """Load ``path`` with LiteRT on ``threads`` CPU threads.

    Raises :class:`ModelLoadError` when LiteRT is missing (with the install hint) or the file is
    not a loadable TFLite model.
    """
    interpreter_mod = require("ai_edge_litert.interpreter", ModelLoadError, "effects", package="ai-edge-litert")
    path = Path(path)
    try:
        with _native_info_silenced():
            interpreter = interpreter_mod.Interpreter(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{path} is not a loadable TFLite model: {str(exc).strip().splitlines()[0][:200]}") from None
    return LiteRTNet(interpreter, path)


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _native_info_silenced() -> Iterator[None]:
    """Drop the ``INFO: ...`` lines LiteRT's C++ runtime writes straight to file descriptor 2 while
    it builds an interpreter (``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` on every
    mask run; no environment variable turns it off). Anything else it writes there (a warning, an
    error) is passed on to the real stderr unchanged, after the call."""
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no usable fd 2 (an embedded interpreter): leave it alone
            yield
            return
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                kept = [line for line in capture.read().splitlines(keepends=True) if not line.startswith(b"INFO: ")]
                if kept:
                    os.write(2, b"".join(kept))
