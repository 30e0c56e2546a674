"""Rank 0's loop: the front's chunks and calls in, micro-steps out to stage 1, results back.

One thread runs everything that touches the stream (encoder, conductor, stage 0's blocks, LoRA
merges); two threads only receive: the front's pipe and the ring's back edge (the last stage's
``x0`` and frames). Both feed one event queue, so the loop sleeps when there is nothing to do.

Order is the contract: the front's messages are handled in the order sent (a call after a chunk
sees that chunk planned), and the records for the stages (steps, LoRA switches, resets) leave in
the conductor's plan order, which every stage keeps. A chunk is planned only while fewer than
``steps + 1`` micro-steps wait to go out, so commands reach the stream within about one chunk.

Messages from the front: ``("chunk", id, frames)``, ``("call", id, method, args)``, ``("stop",)``.
To the front: ``("entered", id, view)`` (the chunk is planned), ``("frames", id, uint8 [T, H, W, 3],
finite)``, ``("reply", id, ok, value)``, ``("error", rank, message, primary)`` (in worker.py).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Any

from livestyle.engine.commands import Reset, SetDecoder, SetLora, SetPrompt
from livestyle.errors import LivestyleError, one_line
from livestyle.parallel.schedule import Conductor, Control, Step
from livestyle.parallel.transport import Inlet, Record, ready
from livestyle.parallel.protocol import PeerLost, WorkerSpec, drain, stream_view

__all__ = ["FirstStage"]


class FirstStage:
    """Rank 0 of ``spec`` over ``pipe`` (module docstring)."""

    def __init__(self, spec: WorkerSpec, pipe: Any, executor: Any, transport: Any, back: Any, conn: Any) -> None:
        self.spec = spec
        self.pipe = pipe
        self.executor = executor
        self.transport = transport
        self.back = back
        self.conn = conn
        self.conductor = Conductor(pipe.family, stream_batched=pipe.family.kv_mode == "stream_batch"
                                   and pipe.family.stream_batch)
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.inbox: deque[tuple] = deque()
        self.stopping = False
        self.last = spec.world - 1
        threading.Thread(target=self._read_front, name="livestyle-front-pipe", daemon=True).start()
        Inlet(transport, self.last, back, sink=self.events, tag="ring")

    def _read_front(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                message = ("stop",)
            self.events.put(("front", message))
            if message[0] == "stop":
                return

    # ------------------------------------------------------------------ the loop
    def loop(self) -> None:
        pending: deque[tuple[str, Any]] = deque()
        while True:
            drain(self.events, pending)
            while pending:
                source, payload = pending.popleft()
                if source == "front":
                    self.inbox.append(payload)
                elif self._ring(payload):
                    return
            if self.stopping:
                continue_wait = True
            else:
                continue_wait = not self._work()
            if continue_wait:
                source, payload = self.events.get()
                pending.append((source, payload))

    def _work(self) -> bool:
        """Do one thing that can be done now; False when there is nothing."""
        item = self.conductor.next_ready()
        if item is not None:
            self._issue(item)
            return True
        if self.inbox:
            head = self.inbox[0]
            if head[0] == "chunk" and self.conductor.backlog > self.pipe.controls.steps:
                return False
            self.inbox.popleft()
            self._front(head)
            return True
        return False

    def _ring(self, record: Record) -> bool:
        """A record from the last stage; True when the stream is over."""
        kind = record.kind
        if kind == "error":
            raise PeerLost(f"stage 0 lost stage {record.meta['src']}: {record.meta['message']}")
        if kind == "stop":
            return True
        record = ready(record)
        if kind == "x0":
            self.conductor.returned(int(record.meta["key"]), record.tensors[0])
        elif kind == "frames":
            array = record.tensors[0].cpu().numpy()
            self.conn.send(("frames", record.meta["chunk"], array, bool(record.meta["finite"])))
        return False

    def _front(self, message: tuple) -> None:
        kind = message[0]
        if kind == "stop":
            self.stopping = True
            self.transport.send(1, Record({"kind": "stop"}, []))
        elif kind == "chunk":
            _, chunk, frames = message
            self._chunk(chunk, frames)
        elif kind == "call":
            _, call, method, args = message
            try:
                value = self._call(method, *args)
            except LivestyleError as exc:
                self.conn.send(("reply", call, False, (type(exc).__name__, one_line(exc))))
            else:
                self.conn.send(("reply", call, True, value))

    # ------------------------------------------------------------------ chunks and records
    def _chunk(self, chunk: int, frames: list) -> None:
        pipe = self.pipe
        entry = pipe.enter_chunk(frames)
        st = pipe.state
        self.conductor.add_chunk(chunk, entry, noise_like=pipe.noise_like, source_size=st.source_size,
                                 latents=st.plan.latents, first_latents=st.plan.first_latents)
        self.conn.send(("entered", chunk, stream_view(pipe)))

    def _issue(self, item: Step | Control) -> None:
        if isinstance(item, Control):
            meta = {"kind": item.kind, "command": item.command}
            if item.kind == "reset":
                self.executor.reset()
            else:
                self.executor.command(item.command)
            self.transport.send(1, Record(meta, []))
            return
        assert item.x is not None
        tensors = [item.x, item.t] + ([item.ctx] if item.ctx is not None else [])
        meta = item.meta()
        out = self.executor.run(meta, tensors)
        self.transport.send(1, Record(meta, out))
        item.x = None  # the inputs are on their way; keep nothing per step

    # ------------------------------------------------------------------ calls from the front
    def _call(self, method: str, *args: Any) -> Any:
        pipe = self.pipe
        if method == "apply":
            return self._apply(args[0])
        if method == "precondition":
            pipe.precondition(args[0])
            return None
        if method == "warm_prompts":
            pipe.warm_prompts(args[0])
            return None
        if method == "warm_loras":
            pipe.warm_loras(args[0])
            self.conductor.add_control(Control("command", ("warm_loras", tuple(args[0]))))
            return None
        if method == "wait_for_prompts":
            return pipe.wait_for_prompts(args[0])
        if method == "stats":
            stats = dict(pipe.stats())
            stats["stages"] = [str(s) for s in self.spec.spans]
            stats["gpus"] = self.spec.world
            stats["stage_backlog"] = self.conductor.backlog
            stats["bytes_sent"] = self.transport.bytes_sent
            return stats
        if method == "restore_counters":
            pipe.counters.update(args[0])
            return stream_view(pipe)
        if method == "view":
            return stream_view(pipe)
        raise LivestyleError(f"rank 0 has no call {method!r}")

    def _apply(self, command: object) -> dict[str, Any]:
        """A live command: checked and applied to the stream's entry now, and queued for every stage
        after the steps planned so far (a LoRA switch, a decoder change, a new stream)."""
        pipe = self.pipe
        state = pipe.state
        if isinstance(command, SetLora):
            pipe.precondition(command)  # the files are read and checked now; the merge is in step order
            pipe.controls.loras = tuple(command.value)
            self.conductor.add_control(Control("command", command))
            return stream_view(pipe)
        if isinstance(command, SetPrompt):
            pipe.apply(command)
            return stream_view(pipe)
        pipe.apply(command)
        if isinstance(command, SetDecoder):
            self.conductor.add_control(Control("command", command))
        if pipe.state is not state or isinstance(command, Reset):
            self.conductor.add_control(Control("reset"))
        return stream_view(pipe)
