"""A prompt cache whose disk writes may fail without failing the prompt.

The on-disk prompt cache (:class:`livestyle.models.text.PromptEmbeddingCache`) is a side effect of
encoding a prompt: the embedding is computed and kept in memory before the file is written. A full
disk, a read-only or deleted folder make that write raise, and the raise used to travel up through
the encoder, so the prompt was reported as "could not be encoded" and dropped (while the API said
it was applied). :class:`TolerantPromptCache` wraps the cache: a failed write removes its
half-written temporary file, counts ``write_errors``, logs one warning (then one per
``WARN_EVERY`` failures) and returns; the prompt is applied from memory. Writes are tried again
each time, so a disk that frees up is used again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any

import torch

from livestyle.errors import one_line

__all__ = ["WARN_EVERY", "TolerantPromptCache"]

log = logging.getLogger(__name__)

WARN_EVERY = 100
"""After the first failed write, a warning every this many failures (a long run on a full disk
must not fill the log as well)."""


class TolerantPromptCache:
    """Wraps a ``PromptEmbeddingCache`` (any object with ``get``, ``put`` and ``path_for``); every
    other attribute is the wrapped cache's."""

    def __init__(self, cache: Any) -> None:
        self._cache = cache
        self._lock = threading.Lock()
        self.write_errors = 0
        self.last_write_error: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cache, name)

    def get(self, prompt: str) -> torch.Tensor | None:
        return self._cache.get(prompt)

    def put(self, prompt: str, embedding: torch.Tensor, length: int) -> None:
        """Store through the wrapped cache; a failing disk write is counted and logged, never raised."""
        try:
            self._cache.put(prompt, embedding, length)
        except Exception as exc:  # noqa: BLE001 - OSError, SafetensorError (ENOSPC), ...: the write is a side effect
            self._remove_partial(prompt)
            with self._lock:
                self.write_errors += 1
                self.last_write_error = one_line(exc)
                count = self.write_errors
            if count == 1 or count % WARN_EVERY == 0:
                log.warning("the prompt cache cannot write to %s (%s); prompts are applied and kept in memory "
                            "only (%d failed writes so far)", getattr(self._cache, "directory", "?"),
                            self.last_write_error, count)

    def stats(self) -> dict[str, Any]:
        """``write_errors`` and ``last_write_error`` (None when every write succeeded)."""
        with self._lock:
            return {"write_errors": self.write_errors, "last_write_error": self.last_write_error}

    def _remove_partial(self, prompt: str) -> None:
        """Delete this process's temporary file for ``prompt`` (``.<name>.<pid>.tmp`` next to its
        file), which a full disk leaves half-written."""
        path = self._cache.path_for(prompt)
        if path is None:
            return
        with contextlib.suppress(OSError):
            path.with_name(f".{path.name}.{os.getpid()}.tmp").unlink()
