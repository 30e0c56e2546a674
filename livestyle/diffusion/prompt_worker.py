"""Prompt embeddings computed off the generator thread, so a new prompt never stalls the video.

A free-text prompt the encoder has not seen costs one umT5-XXL pass (>= 50 ms on a GPU; seconds
on a CPU or when the encoder must be loaded first). Run on the generator thread between chunks,
that pass is a frozen picture while the streamer types. :class:`PromptWorker` runs the encoder on
its own daemon thread (and, on CUDA, its own stream), and the generator picks finished embeddings
up between chunks with :meth:`PromptWorker.collect`; the blend to the new prompt starts then.

Requests coalesce: while one prompt is being encoded, only the newest waiting request is kept,
so typing fast never queues a backlog of stale prompts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["PromptResult", "PromptWorker"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptResult:
    """A finished request: the embedding ``[1, L, text_dim]`` on the encoder's device, or the error."""

    text: str
    request: Any
    embedding: torch.Tensor | None
    error: BaseException | None = None


class PromptWorker:
    """Runs ``encode(text) -> embedding`` on its own thread; results are collected between chunks.

    Args:
        encode: the prompt encoder (cached per text by the encoder itself).
        device: where embeddings end up; on CUDA the encoder runs on a side stream and the result
            is synchronised before it is handed over, so the generator's stream never waits on it.
    """

    def __init__(self, encode: Callable[[str], torch.Tensor], device: torch.device | str = "cpu") -> None:
        self._encode = encode
        self._device = torch.device(device)
        self._cv = threading.Condition()
        self._waiting: tuple[str, Any] | None = None
        self._busy: str | None = None
        self._done: list[PromptResult] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self.superseded = 0

    def submit(self, text: str, request: Any = None) -> None:
        """Ask for ``text``'s embedding; a request still waiting (not started) is replaced."""
        with self._cv:
            if self._waiting is not None:
                self.superseded += 1
            self._waiting = (text, request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="livestyle-prompts", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    def collect(self) -> list[PromptResult]:
        """Finished results, oldest first (never blocks)."""
        with self._cv:
            done, self._done = self._done, []
            return done

    @property
    def pending(self) -> str | None:
        """The prompt being encoded or waiting (the newest), or None when idle."""
        with self._cv:
            if self._waiting is not None:
                return self._waiting[0]
            return self._busy

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is waiting or being encoded (tests, warm-up); False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: self._waiting is None and self._busy is None, timeout)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def _loop(self) -> None:
        stream = torch.cuda.Stream(self._device) if self._device.type == "cuda" else None
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._waiting is not None or self._closed)
                if self._closed:
                    return
                assert self._waiting is not None
                (text, request), self._waiting = self._waiting, None
                self._busy = text
            result = self._run(text, request, stream)
            with self._cv:
                self._done.append(result)
                self._busy = None
                self._cv.notify_all()

    def _run(self, text: str, request: Any, stream: Any) -> PromptResult:
        try:
            with torch.no_grad():
                if stream is not None:
                    with torch.cuda.stream(stream):
                        emb = self._encode(text)
                    stream.synchronize()
                else:
                    emb = self._encode(text)
            return PromptResult(text, request, emb)
        except Exception as exc:  # noqa: BLE001 - handed to the generator, which reports it as a command error
            log.warning("prompt %r could not be encoded: %s", text[:60], exc)
            return PromptResult(text, request, None, exc)
