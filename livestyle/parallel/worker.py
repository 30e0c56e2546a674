"""The main of one stage process: join the process group, open the model, run the stage loop.

Every stage opens the same model through ``livestyle.diffusion.open`` (same weights, seed and
settings as one process would) and runs its share (:class:`~livestyle.parallel.stage.StageExecutor`).
Rank 0 also talks to the front (:mod:`livestyle.parallel.front`) over a pipe: chunks in, calls
(``apply``, ``stats``, ...) answered, styled frames out; it plans the micro-steps
(:class:`~livestyle.parallel.schedule.Conductor`) and encodes. Records go rank ``r`` → ``r + 1``
on the default group; the last stage sends ``x0`` and decoded frames back to rank 0 on a group of
their own (``back``), so that on NCCL the two directions never share a communicator.

A stage never outlives the command that started it: SIGINT is ignored (the parent stops the stream
cleanly and then the stages), ``PR_SET_PDEATHSIG`` kills it with its parent on Linux, and a watchdog
thread exits when the parent pid changes (any platform; a torchrun agent counts as the parent).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import signal
import sys
import threading
import time
from datetime import timedelta
from typing import Any

from livestyle.parallel.first_stage import FirstStage
from livestyle.parallel.protocol import PeerLost, WorkerSpec, stream_view

__all__ = ["guard_parent", "worker_main"]

log = logging.getLogger(__name__)
WATCH_S = 0.25
"""How often a stage checks that its parent is still there."""


def guard_parent(parent_pid: int) -> None:
    """Die with the parent: ``PR_SET_PDEATHSIG`` (Linux) and a watchdog thread on the parent pid."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent_pid:
        os._exit(3)

    def watch() -> None:
        while True:
            time.sleep(WATCH_S)
            if os.getppid() != parent_pid:
                os._exit(3)

    threading.Thread(target=watch, name="livestyle-parent-watch", daemon=True).start()


def worker_main(spec: WorkerSpec, conn: Any) -> None:
    """Entry point of stage ``spec.rank`` (``torch.multiprocessing`` spawn target, or called in
    place under torchrun). ``conn``: rank 0's duplex pipe to the front; for the others a pipe that
    only reports ``ready`` and errors. Exits the process when the stream ends."""
    guard_parent(spec.parent_pid)
    os.environ["NCCL_NVLS_ENABLE"] = "0"  # never NVLink multicast
    logging.basicConfig(level=logging.WARNING, format=f"livestyle stage {spec.rank}: %(message)s")
    code = 0
    try:
        _run(spec, conn)
    except PeerLost as exc:
        _report(conn, ("error", spec.rank, str(exc), False))
        code = 1
    except BaseException as exc:  # noqa: BLE001 - reported to the front as this stage's one line
        from livestyle.errors import one_line

        _report(conn, ("error", spec.rank, one_line(exc), True))
        code = 1
    finally:
        try:
            conn.close()
        except OSError:
            pass
    os._exit(code)


def _report(conn: Any, message: tuple) -> None:
    try:
        conn.send(message)
    except (OSError, EOFError, BrokenPipeError):
        pass


def _run(spec: WorkerSpec, conn: Any) -> None:
    import torch
    import torch.distributed as dist

    from livestyle.diffusion.open import open_stream_pipeline
    from livestyle.parallel.stage import StageExecutor
    from livestyle.parallel.transport import Transport

    if spec.threads > 0:
        torch.set_num_threads(spec.threads)
    device = torch.device(spec.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(spec.backend, init_method=spec.init_method,
                            rank=spec.rank, world_size=spec.world, timeout=timedelta(minutes=10))
    back = dist.new_group([0, spec.world - 1])
    model = dataclasses.replace(spec.config.model, gpus=1, device=spec.device)
    opener = spec.opener if spec.opener is not None else open_stream_pipeline
    pipe = opener(dataclasses.replace(spec.config, model=model), spec.model)
    executor = StageExecutor(pipe, spec.span)
    transport = Transport(device)
    _report(conn, ("ready", spec.rank, stream_view(pipe)))
    try:
        if spec.span.first:
            FirstStage(spec, pipe, executor, transport, back, conn).loop()
        else:
            _later_stage(spec, executor, transport, back)
    finally:
        transport.flush()
        dist.destroy_process_group()


def _later_stage(spec: WorkerSpec, executor: Any, transport: Any, back: Any) -> None:
    """Stages 1..N-1: records from the previous stage, run in order, passed on (the last stage
    decodes and sends x0 and frames back to rank 0)."""
    import torch

    from livestyle.parallel.transport import Inlet, Record

    span = spec.span
    inlet = Inlet(transport, span.rank - 1, sink=queue.Queue(maxsize=4))
    while True:
        record = inlet.get()
        kind = record.kind
        if kind == "error":
            raise PeerLost(f"stage {span.rank} lost stage {record.meta['src']}: {record.meta['message']}")
        if kind == "stop":
            if not span.last:
                transport.send(span.rank + 1, record)
            else:
                transport.send(0, record, group=back)
            return
        if kind == "reset":
            executor.reset()
        elif kind == "command":
            executor.command(record.meta["command"])
        elif kind == "step":
            out = executor.run(record.meta, record.tensors)
            if not span.last:
                transport.send(span.rank + 1, Record(record.meta, out))
                continue
            meta = record.meta
            x0 = out[0]
            if meta["returns"]:
                transport.send(0, Record({"kind": "x0", "key": meta["key"]}, [x0]), group=back)
            if meta["emit"] is not None:
                array, finite = executor.pipe.decode_chunk(x0, tuple(meta["source_size"]))
                transport.send(0, Record({"kind": "frames", "chunk": meta["emit"], "finite": finite},
                                         [torch.from_numpy(array)]), group=back)
            continue
        else:
            raise RuntimeError(f"stage {span.rank} got an unknown record kind {kind!r}")
        if not span.last:
            transport.send(span.rank + 1, record)
