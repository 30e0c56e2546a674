"""Generator registry: model names on the command line -> factories that build a Generator.

Registering a model is one line in :data:`GENERATORS`: the name and either a factory or a
``"module:function"`` string, imported only when that model is chosen (so torch-heavy modules
stay out of ``--help`` and of the passthrough path)::

    "sdv2-1.3b": "livestyle.pipeline.stream:open_sdv2_1_3b",

A factory takes the whole :class:`~livestyle.config.Config` and returns an object that
implements :class:`~livestyle.pipeline.frames.Generator`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from livestyle.config import Config
from livestyle.errors import ConfigError
from livestyle.pipeline.frames import Generator
from livestyle.pipeline.passthrough import PassthroughGenerator

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


GENERATORS: dict[str, GeneratorFactory | str] = {
    "passthrough": _passthrough,
    "tiny": "livestyle.pipeline.open:open_tiny",
    "sdv2-1.3b": "livestyle.pipeline.open:open_sdv2_1_3b",
    "sdv2-14b": "livestyle.pipeline.open:open_sdv2_14b",
    "self-forcing-1.3b": "livestyle.pipeline.open:open_self_forcing_1_3b",
    "longlive-1.3b": "livestyle.pipeline.open:open_longlive_1_3b",
    "krea-14b": "livestyle.pipeline.open:open_krea_14b",
}
"""Model name -> factory, or ``"module:function"`` naming one (imported on first use)."""


def generator_names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(GENERATORS)


def _resolve(name: str, entry: GeneratorFactory | str) -> GeneratorFactory:
    if callable(entry):
        return entry
    module_name, _, func_name = entry.partition(":")
    module = importlib.import_module(module_name)
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise TypeError(f"generator {name!r}: {entry!r} does not name a callable")
    return factory


def open_generator(name: str, config: Config) -> Generator:
    """Build the generator registered as ``name`` for ``config``.

    Raises:
        ConfigError: ``name`` is not registered (the message lists the valid names).
    """
    entry = GENERATORS.get(name)
    if entry is None:
        raise ConfigError(
            f"unknown model {name!r}; valid models: {', '.join(generator_names())}"
        )
    return _resolve(name, entry)(config)
