"""Starting and ending the stage processes of a ``--gpus N`` stream.

:func:`launch_plan` decides, from the config and the environment, how the ``N`` stages come to be:

- started by the command itself (the usual case): ``N`` processes from ``torch.multiprocessing``'s
  spawn context, rendezvous on a free local TCP port, rank ``r`` on ``cuda:r`` (or the CPU);
- under torchrun (``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` set, ``WORLD_SIZE`` = N):
  every torchrun process runs the command; the one of rank 0 streams and starts its stage as a
  child, the others run their stage in place (``env://`` rendezvous, ``cuda:LOCAL_RANK``).

NCCL on CUDA, gloo on the CPU; ``NCCL_NVLS_ENABLE=0`` in every stage's environment. More stages
than visible CUDA devices is a :class:`~livestyle.errors.ConfigError`; on the CPU (``--device
cpu``) any number of processes may share the machine (their torch threads split the cores).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

from livestyle.config import Config
from livestyle.errors import ConfigError
from livestyle.parallel.protocol import WorkerSpec
from livestyle.planning.stage_split import StageSpan

__all__ = ["LaunchPlan", "check_devices", "launch_plan", "spawn_stage", "stop_processes", "torchrun_rank"]

STOP_S = 10.0
"""How long a stage may take to leave after the stream told it to stop, before it is terminated."""


def torchrun_rank() -> tuple[int, int, int] | None:
    """``(rank, world size, local rank)`` when this process was started by torchrun, else None."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise ConfigError("RANK/WORLD_SIZE/LOCAL_RANK must be integers (torchrun sets them)") from None
    return (rank, world, local) if world > 1 else None


@dataclass(frozen=True)
class LaunchPlan:
    """How the stages start: ``specs`` for the processes this command starts (all of them, or
    rank 0 only under torchrun), ``in_place`` the spec this process runs itself (torchrun rank > 0)."""

    specs: tuple[WorkerSpec, ...]
    in_place: WorkerSpec | None
    backend: str
    devices: tuple[str, ...]


def _device_kind(device: str) -> str:
    """``cpu`` or ``cuda`` for ``model.device`` (``auto``: CUDA when this torch sees a GPU)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "auto-cpu"
    if device.startswith("cuda"):
        return "cuda"
    if device == "cpu":
        return "cpu"
    raise ConfigError(f"--gpus runs on CUDA GPUs or, for tests, CPU processes (--device cpu); not on {device!r}")


def check_devices(device: str, gpus: int) -> str:
    """``"cuda"`` or ``"cpu"`` for a ``gpus``-stage stream on ``device``; ConfigError when this
    machine shows fewer CUDA devices than stages."""
    import torch

    kind = _device_kind(device)
    if kind == "cpu":
        return "cpu"
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if kind == "auto-cpu" or visible < gpus:
        raise ConfigError(f"--gpus {gpus} but this machine shows {visible} CUDA device(s); "
                          f"use --gpus {max(visible, 1)}{'' if visible else ' (or --device cpu to test with CPU processes)'}")
    return "cuda"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_plan(config: Config, model: str, spans: tuple[StageSpan, ...], opener: Any = None) -> LaunchPlan:
    """The stage processes of a ``len(spans)``-stage stream of ``model`` (module docstring);
    ``opener``: ``WorkerSpec.opener``."""
    gpus = len(spans)
    kind = check_devices(config.model.device, gpus)
    backend = "nccl" if kind == "cuda" else "gloo"
    threads = max(1, (os.cpu_count() or 1) // gpus) if kind == "cpu" else 0
    run = torchrun_rank()
    if run is not None:
        rank, world, local = run
        if world != gpus:
            raise ConfigError(f"--gpus {gpus} but torchrun started {world} processes (WORLD_SIZE); make them equal")
        device = "cpu" if kind == "cpu" else f"cuda:{local}"
        spec = WorkerSpec(config, model, spans, rank, "env://", backend, device, os.getppid() if rank else os.getpid(),
                          threads, opener)
        if rank == 0:
            return LaunchPlan((spec,), None, backend, (device,))
        return LaunchPlan((), spec, backend, (device,))
    port = _free_port()
    devices = tuple("cpu" if kind == "cpu" else f"cuda:{r}" for r in range(gpus))
    specs = tuple(WorkerSpec(config, model, spans, r, f"tcp://127.0.0.1:{port}", backend, devices[r], os.getpid(),
                             threads, opener) for r in range(gpus))
    return LaunchPlan(specs, None, backend, devices)


def spawn_stage(spec: WorkerSpec) -> tuple[Any, Any]:
    """Start stage ``spec`` as a spawned child; returns ``(process, the parent's end of its pipe)``."""
    import torch.multiprocessing as mp

    from livestyle.parallel.worker import worker_main

    ctx = mp.get_context("spawn")
    parent_end, child_end = ctx.Pipe(duplex=True)
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # inherited by the child; worker_main sets it too
    process = ctx.Process(target=worker_main, args=(spec, child_end), name=f"livestyle-stage-{spec.rank}", daemon=True)
    process.start()
    child_end.close()
    return process, parent_end


def stop_processes(processes: list[Any], timeout: float = STOP_S) -> None:
    """Wait for ``processes`` to leave, then terminate (and kill) the ones still there."""
    import time

    deadline = time.monotonic() + timeout
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(2.0)
        if p.is_alive():
            p.kill()
            p.join(2.0)
