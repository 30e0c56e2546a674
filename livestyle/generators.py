"""Generator registry: model names on the command line -> factories that build a Generator.

Registering a model is one line in :data:`GENERATORS`: the name and a factory. The diffusion
factories import ``livestyle.diffusion.open`` inside the call, only when that model is chosen (so
torch-heavy modules stay out of ``--help`` and of the passthrough path); the imports are plain
``from ... import`` statements, which ``tests/test_architecture.py`` can see.

A factory takes the whole :class:`~livestyle.config.Config` and returns an object that
implements :class:`~livestyle.engine.frames.Generator`. This module is where the engine meets the
generators it runs: it sits above ``livestyle.engine`` and ``livestyle.diffusion``.
"""

from __future__ import annotations

from collections.abc import Callable

from livestyle.config import Config
from livestyle.errors import ConfigError
from livestyle.engine.frames import Generator
from livestyle.engine.passthrough import PassthroughGenerator

__all__ = ["GENERATORS", "GeneratorFactory", "generator_names", "open_generator"]

GeneratorFactory = Callable[[Config], Generator]


def _passthrough(config: Config) -> Generator:
    return PassthroughGenerator(
        prompt=config.model.prompt,
        strength=config.model.strength,
        steps=config.model.steps,
        seed=config.model.seed,
        effect=config.effects.mode,
    )


def _diffusion(opener: str) -> GeneratorFactory:
    """A factory calling ``livestyle.diffusion.open.<opener>``, imported when the model is opened."""
    def factory(config: Config) -> Generator:
        from livestyle.diffusion import open as diffusion_open

        return getattr(diffusion_open, opener)(config)  # type: ignore[no-any-return]

    factory.__name__ = opener
    return factory


GENERATORS: dict[str, GeneratorFactory] = {
    "passthrough": _passthrough,
    "tiny": _diffusion("open_tiny"),
    "sdv2-1.3b": _diffusion("open_sdv2_1_3b"),
    "sdv2-14b": _diffusion("open_sdv2_14b"),
    "self-forcing-1.3b": _diffusion("open_self_forcing_1_3b"),
    "longlive-1.3b": _diffusion("open_longlive_1_3b"),
    "krea-14b": _diffusion("open_krea_14b"),
}
"""Model name -> factory (the diffusion ones import their module on first use)."""


def generator_names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(GENERATORS)


def open_generator(name: str, config: Config) -> Generator:
    """Build the generator registered as ``name`` for ``config``.

    With ``model.gpus`` > 1 a diffusion model streams over that many stage processes
    (:mod:`livestyle.parallel`).

    Raises:
        ConfigError: ``name`` is not registered (the message lists the valid names), or the stages
            cannot run (more than the visible GPUs, a family the stages do not split).
    """
    entry = GENERATORS.get(name)
    if entry is None:
        raise ConfigError(
            f"unknown model {name!r}; valid models: {', '.join(generator_names())}"
        )
    if config.model.gpus > 1 and name != "passthrough":
        from livestyle.parallel.open import open_parallel

        return open_parallel(config, name)  # one process per GPU, the DiT's blocks split over them
    return entry(config)
