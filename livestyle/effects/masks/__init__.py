"""Mask providers for background effects: ``chroma``, ``selfie`` and ``person-hq`` (MODNet); ``person`` picks one.

``open_mask_provider(kind, ...)`` builds one by name; custom providers implement
:class:`MaskProvider` and are handed to :class:`livestyle.effects.generator.EffectGenerator` directly.

``person`` is ``selfie`` (MediaPipe selfie segmentation on LiteRT, a few ms per frame on one
core) where LiteRT is installed (``livestyle[effects]``), else ``person-hq`` (MODNet: a finer
matte, hundreds of ms per frame on a CPU, real-time only on a GPU).
"""

from __future__ import annotations

import logging

from livestyle.config import ChromaKeyConfig, PersonMaskConfig, SelfieMaskConfig
from livestyle.errors import ConfigError
from livestyle.effects.masks.base import MaskProvider, MaskResult, fit_mask
from livestyle.effects.masks.chroma import ChromaKeyer

__all__ = [
    "MASK_KINDS",
    "MaskProvider",
    "MaskResult",
    "fit_mask",
    "open_mask_provider",
    "person_mask_kind",
]

log = logging.getLogger(__name__)

MASK_KINDS: tuple[str, ...] = ("chroma", "person", "selfie", "person-hq")


def person_mask_kind() -> str:
    """What ``person`` means here: ``selfie`` where LiteRT is installed, else ``person-hq``."""
    from livestyle.models.litert import litert_available

    return "selfie" if litert_available() else "person-hq"


def open_mask_provider(
    kind: str,
    chroma: ChromaKeyConfig | None = None,
    person: PersonMaskConfig | None = None,
    selfie: SelfieMaskConfig | None = None,
) -> MaskProvider:
    """The provider named ``kind`` (one of :data:`MASK_KINDS`) with its settings.

    The person masks load their model now, so a missing download fails here with the
    ``livestyle weights pull`` command to run, not in the middle of a stream.
    """
    if kind == "chroma":
        return ChromaKeyer(chroma)
    if kind == "person":
        kind = person_mask_kind()
        if kind == "person-hq":
            log.warning("--mask person: LiteRT is not installed, using MODNet (slow on a CPU); pip install 'livestyle[effects]'")
    if kind == "selfie":
        from livestyle.effects.masks.selfie import open_selfie_segmenter

        return open_selfie_segmenter(selfie)
    if kind == "person-hq":
        from livestyle.effects.masks.person import open_person_segmenter

        return open_person_segmenter(person)
    raise ConfigError(f"unknown mask {kind!r}; choose one of: {', '.join(MASK_KINDS)}")
