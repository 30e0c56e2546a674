"""Open a ``--gpus N`` stream of a registry model: checks, the split, the stages, the front.

:func:`open_parallel` is what ``livestyle.generators`` calls when ``model.gpus`` > 1. Before any
process starts it checks what would only fail inside a stage: the model's family runs on stages
(SDV2's stream batch or steps in turn, Self-Forcing's re-run; not Krea's per-chunk recompute or
LongLive's re-cache on a prompt switch), the stages fit the model's blocks and the machine's devices,
and the weights are present (the ``tiny`` test model's are written once here, not by every stage).
The blocks split evenly (:func:`~livestyle.planning.stage_split.equal_split`): the blocks of a Wan
DiT all cost the same, and the encoder and decoder are small next to a stage of blocks.
"""

from __future__ import annotations

import logging
from typing import Any

from livestyle.config import Config
from livestyle.errors import ConfigError, WeightsError
from livestyle.parallel.front import ParallelStream
from livestyle.parallel.launch import check_devices, launch_plan
from livestyle.parallel.worker import worker_main
from livestyle.planning.stage_split import StageSpan, equal_split

__all__ = ["open_parallel", "stage_spans"]

log = logging.getLogger(__name__)


def stage_spans(config: Config, name: str) -> tuple[StageSpan, ...]:
    """The split of model ``name``'s blocks over ``model.gpus`` stages; ConfigError when the model's
    family cannot run on stages or has fewer blocks than stages."""
    from livestyle.diffusion.family import family_from_mapping
    from livestyle.models.dit import DIT_CONFIGS
    from livestyle.models.weights import get_model

    spec = get_model(name)
    family = family_from_mapping(spec.pipeline, source=f"model {name!r}")
    gpus = config.model.gpus
    if family.kv_mode == "recompute":
        raise ConfigError(f"model {name} rebuilds its KV cache every chunk (Krea's recompute), which --gpus {gpus} does not split; use --gpus 1")
    if family.recache_on_prompt:
        raise ConfigError(f"model {name} re-caches its frames on a prompt switch (LongLive), which --gpus {gpus} does not split; use --gpus 1")
    dit = DIT_CONFIGS.get(str(spec.dit)) if getattr(spec, "dit", None) is not None else None
    layers = dit.num_layers if dit is not None else _layers_of(config, name)
    return equal_split(layers, gpus)


def _layers_of(config: Config, name: str) -> int:
    """The block count of a model the registry gives no DiT size for (the tiny test model): from its file."""
    from livestyle.models.checkpoints import load_dit

    return load_dit(_ensure_weights(config, name)["dit"], device="cpu").config.num_layers


def _ensure_weights(config: Config, name: str) -> dict[str, object]:
    """Resolve every file of ``name`` (writing a generated test model once); role -> path."""
    from livestyle.models.weights import get_model, resolve
    from livestyle.models.weights_pull import pull

    spec = get_model(name)
    weights_dir = config.model.weights_dir
    try:
        return {role: resolve(spec, role, weights_dir=weights_dir) for role in spec.files}
    except WeightsError:
        if not all(f.generate for f in spec.files.values()):
            raise
        log.warning("writing the %s TEST model (random weights, pictures are noise) to the user cache", spec.name)
        pull(spec, progress=False)
        return {role: resolve(spec, role) for role in spec.files}


def open_parallel(config: Config, name: str, *, opener: Any = None, layers: int | None = None) -> ParallelStream:
    """Start the stages of a ``model.gpus``-stage stream of ``name`` and return its front.

    ``opener``/``layers``: a stack other than the registry's (``WorkerSpec.opener``, e.g. random
    weights for tests) and its block count. Under torchrun a process of rank > 0 runs its stage here
    until the stream ends and then exits.
    """
    check_devices(config.model.device, config.model.gpus)  # before anything is loaded or written
    if opener is None:
        spans = stage_spans(config, name)
        _ensure_weights(config, name)
    else:
        if layers is None:
            raise ConfigError("open_parallel with an opener needs the model's block count (layers=)")
        spans = equal_split(layers, config.model.gpus)
    plan = launch_plan(config, name, spans, opener)
    if plan.in_place is not None:
        worker_main(plan.in_place, _NoFront())  # never returns: the stage exits the process
    log.info("%d stages: %s", len(spans), ", ".join(map(str, spans)))
    return ParallelStream(config, name, plan, spans)


class _NoFront:
    """The report pipe of a torchrun stage that has no front in its process: reports go to the log."""

    def send(self, message: tuple) -> None:
        if message[0] == "error":
            log.error("stage %s failed: %s", message[1], message[2])

    def close(self) -> None:
        return None
