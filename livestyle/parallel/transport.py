"""Records between pipeline stages over ``torch.distributed`` point-to-point ops.

A record is a small picklable ``meta`` dict plus a list of tensors. On the wire (one
:class:`Transport` per process, every op on ``group``):

1. ``int64 [2]``: the pickled meta's length in bytes and the number of tensors;
2. ``uint8 [n]``: the pickled ``(meta, [(shape, dtype), ...])``;
3. each tensor, contiguous, in order.

Sends are asynchronous (``isend``): :meth:`Transport.send` returns at once and keeps the tensors
alive until their works complete (at most ``max_pending`` records in flight, then it waits for the
oldest), so a stage computes its next micro-step while the last one is still on the wire. On CUDA
(NCCL) the sends are issued on a communication stream that waits for the compute stream's event, and
:class:`Inlet` receives on its own thread and stream; the record's tensors are handed over with an
event the compute stream waits on. Gloo (CPU) needs none of that. NCCL sends only device tensors, so
host tensors are moved to the device before sending and the receiver gets device tensors.

Point-to-point messages between two ranks on one group arrive in the order they were sent; the
stages rely on that (every stage sees the same record order).
"""

from __future__ import annotations

import pickle
import queue
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["Inlet", "Record", "Transport", "ready"]


@dataclass
class Record:
    """What travels between stages: ``meta`` (``"kind"`` and the fields of that kind) and tensors."""

    meta: dict[str, Any]
    tensors: list[torch.Tensor]

    @property
    def kind(self) -> str:
        return str(self.meta["kind"])


class Transport:
    """Send and receive :class:`Record` objects with the neighbours of this rank.

    ``device``: where the tensors of this rank live (NCCL needs CUDA tensors, gloo CPU ones).
    """

    def __init__(self, device: torch.device, *, max_pending: int = 8) -> None:
        self.device = device
        self.wire = device if device.type == "cuda" else torch.device("cpu")
        self.max_pending = max_pending
        self._pending: deque[tuple[list[Any], list[torch.Tensor]]] = deque()
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.bytes_sent = 0

    def send(self, dst: int, record: Record, group: Any = None) -> None:
        """Queue ``record`` to rank ``dst``; returns before it has left (see the module docstring)."""
        tensors = [t.detach().to(self.wire).contiguous() for t in record.tensors]
        specs = [(tuple(t.shape), t.dtype) for t in tensors]
        blob = pickle.dumps((record.meta, specs), protocol=pickle.HIGHEST_PROTOCOL)
        head = torch.tensor([len(blob), len(tensors)], dtype=torch.int64, device=self.wire)
        body = torch.frombuffer(bytearray(blob), dtype=torch.uint8).to(self.wire)
        parts = [head, body, *tensors]
        while len(self._pending) >= self.max_pending:
            self._wait_oldest()
        if self._stream is not None:
            ready = torch.cuda.Event()
            ready.record()
            with torch.cuda.stream(self._stream):
                self._stream.wait_event(ready)
                works = [dist.isend(p, dst, group=group) for p in parts]
        else:
            works = [dist.isend(p, dst, group=group) for p in parts]
        self.bytes_sent += sum(p.numel() * p.element_size() for p in parts)
        self._pending.append((works, parts))

    def _wait_oldest(self) -> None:
        works, _ = self._pending.popleft()
        for w in works:
            if w is not None:
                w.wait()

    def flush(self) -> None:
        """Wait until every queued send has left."""
        while self._pending:
            self._wait_oldest()

    def recv(self, src: int, group: Any = None) -> Record:
        """The next record from rank ``src`` (blocks)."""
        head = torch.empty(2, dtype=torch.int64, device=self.wire)
        dist.recv(head, src, group=group)
        size, count = (int(v) for v in head.tolist())
        body = torch.empty(size, dtype=torch.uint8, device=self.wire)
        dist.recv(body, src, group=group)
        meta, specs = pickle.loads(body.cpu().numpy().tobytes())
        if len(specs) != count:
            raise RuntimeError(f"record from rank {src} announces {count} tensors but describes {len(specs)}")
        tensors = []
        for shape, dtype in specs:
            t = torch.empty(shape, dtype=dtype, device=self.wire)
            dist.recv(t, src, group=group)
            tensors.append(t)
        return Record(meta, tensors)


class Inlet:
    """A thread that receives records from one rank into a bounded queue, so the transfer of the
    next micro-step overlaps this stage's compute. ``get()`` returns records in order; an error on
    the wire (a neighbour that died) comes out of ``get()`` as ``("error", message)`` meta."""

    def __init__(self, transport: Transport, src: int, group: Any = None, *, depth: int = 4,
                 sink: queue.Queue[tuple[str, Any]] | None = None, tag: str = "ring") -> None:
        self.transport = transport
        self.src = src
        self.group = group
        self.queue: queue.Queue[tuple[str, Any]] = sink if sink is not None else queue.Queue(maxsize=depth)
        self.tag = tag
        self.stream = torch.cuda.Stream(transport.device) if transport.device.type == "cuda" else None
        self.thread = threading.Thread(target=self._loop, name=f"livestyle-inlet-{src}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            try:
                if self.stream is not None:
                    with torch.cuda.stream(self.stream):
                        record = self.transport.recv(self.src, self.group)
                        done = torch.cuda.Event()
                        done.record()
                    record.meta["_event"] = done
                else:
                    record = self.transport.recv(self.src, self.group)
            except Exception as exc:  # noqa: BLE001 - a dead neighbour: handed to the stage loop
                self.queue.put((self.tag, Record({"kind": "error", "message": f"{type(exc).__name__}: {exc}",
                                                  "src": self.src}, [])))
                return
            self.queue.put((self.tag, record))
            if record.kind == "stop":
                return

    def get(self) -> Record:
        """The next record (waits; on CUDA the current stream is made to wait for its arrival)."""
        _, record = self.queue.get()
        return ready(record)


def ready(record: Record) -> Record:
    """``record`` usable on the current CUDA stream (waits on the event its inlet recorded)."""
    event = record.meta.pop("_event", None)
    if event is not None:
        torch.cuda.current_stream().wait_event(event)
    return record
