"""Host ↔ device transfers of one chunk: one upload of the input frames, one download of the output.

Per chunk the host does two copies and waits once (issue 24: the host time around each chunk):

* **Upload** (:meth:`ChunkTransfer.upload`): the chunk's ``uint8 [H, W, 3]`` frames are copied
  straight into one ``uint8 [T, H, W, 3]`` staging buffer (no ``np.stack`` temporary) and sent to
  the device in one ``non_blocking`` copy. On CUDA the staging buffers are pinned and reused: two
  of them alternate, and before one is rewritten the event recorded after its last copy is waited
  on (long complete in a live stream: the chunk in between ended with a host sync). Everything
  after the upload (``uint8`` → float, normalisation, resizing) runs on the device.
* **Download** (:meth:`ChunkTransfer.download`): the decoded frames, already ``uint8
  [T, H, W, 3]`` on the device, and a few small device values the host needs after the chunk
  (the NaN/Inf flag, the KV cache positions) go to the host in two ``non_blocking`` copies into
  pinned memory, followed by one event wait: one host sync per chunk instead of one per value.
  The frames' buffer comes from PyTorch's caching pinned-memory allocator, not a buffer of ours:
  the returned frames are views of it that sinks may hold for several chunks, and the allocator
  hands a block out again only once every view of it is gone (and its copy has completed).

Pinned memory is used only when CUDA is available and the device is a CUDA device; on the CPU
the same calls do the same work with plain tensors (the upload is one copy, the download none).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from livestyle.errors import PipelineError

__all__ = ["ChunkTransfer"]


class _Staging:
    """One pinned upload buffer and the event after its last host-to-device copy."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.tensor = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        self.array = self.tensor.numpy()
        self.event: torch.cuda.Event | None = None


class ChunkTransfer:
    """The host side of one stream's transfers (module docstring); one per :class:`StreamPipeline`.

    Args:
        device: where the chunk's tensors live; pinned staging is used only for a CUDA device
            while CUDA is available.
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.pinned = self.device.type == "cuda" and torch.cuda.is_available()
        self._staging: list[_Staging] = []
        self._next = 0
        self.uploads = 0
        self.downloads = 0

    def upload(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """``T`` ``uint8 [H, W, 3]`` arrays (one size) → one ``uint8 [T, H, W, 3]`` tensor on the device."""
        if not images:
            raise PipelineError("a chunk needs at least one frame")
        shape = (len(images), *images[0].shape)
        if any(im.shape != shape[1:] for im in images):
            raise PipelineError("frames of one chunk differ in size; the runner must re-plan between chunks")
        self.uploads += 1
        if not self.pinned:
            stack = np.empty(shape, np.uint8)
            for i, im in enumerate(images):
                np.copyto(stack[i], im)
            return torch.from_numpy(stack).to(self.device)
        staging = self._buffer(shape)
        if staging.event is not None:
            staging.event.synchronize()  # its previous copy to the device has finished reading it
        for i, im in enumerate(images):
            np.copyto(staging.array[i], im)
        out = staging.tensor.to(self.device, non_blocking=True)
        staging.event = torch.cuda.Event()
        staging.event.record(torch.cuda.current_stream(out.device))
        return out

    def download(self, images: torch.Tensor, values: torch.Tensor | None = None) -> tuple[np.ndarray, torch.Tensor | None]:
        """``uint8 [T, H, W, 3]`` device frames (and optionally one small 1-D device tensor of
        ``values``) → a host ``uint8`` array ``[T, H, W, 3]`` (and the values on the host), after
        one wait for both copies."""
        if images.dtype != torch.uint8:
            raise PipelineError(f"download takes uint8 frames, got {images.dtype}")
        images = images.contiguous()
        self.downloads += 1
        if images.device.type != "cuda":
            host = images.cpu()
            return host.numpy(), None if values is None else values.cpu()
        host = torch.empty(images.shape, dtype=torch.uint8, pin_memory=True)
        host.copy_(images, non_blocking=True)
        small = None
        if values is not None:
            small = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            small.copy_(values, non_blocking=True)
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(images.device))
        done.synchronize()  # the one host sync of the chunk (releases the GIL while it waits)
        return host.numpy(), small

    def _buffer(self, shape: tuple[int, ...]) -> _Staging:
        if not self._staging or self._staging[0].tensor.shape != shape:
            for old in self._staging:  # a new size: the old buffers may still be in flight
                if old.event is not None:
                    old.event.synchronize()
            self._staging = [_Staging(shape), _Staging(shape)]
            self._next = 0
        staging = self._staging[self._next]
        self._next = 1 - self._next
        return staging
