"""Mask providers for background effects: ``chroma`` (green/blue screen) and ``person`` (MODNet).

``open_mask_provider(kind, ...)`` builds one by name; custom providers implement
:class:`MaskProvider` and are handed to :class:`livestyle.pipeline.effects.EffectGenerator` directly.
"""

from __future__ import annotations

from livestyle.config import ChromaKeyConfig, PersonMaskConfig
from livestyle.errors import ConfigError
from livestyle.pipeline.masks.base import MaskProvider, MaskResult, fit_mask
from livestyle.pipeline.masks.chroma import ChromaKeyer

__all__ = [
    "MASK_KINDS",
    "MaskProvider",
    "MaskResult",
    "fit_mask",
    "open_mask_provider",
]

MASK_KINDS: tuple[str, ...] = ("chroma", "person")


def open_mask_provider(
    kind: str, chroma: ChromaKeyConfig | None = None, person: PersonMaskConfig | None = None
) -> MaskProvider:
    """The provider named ``kind`` (``chroma`` or ``person``) with its settings.

    ``person`` loads the segmentation model now, so a missing download fails here with the
    ``livestyle weights pull`` command to run, not in the middle of a stream.
    """
    if kind == "chroma":
        return ChromaKeyer(chroma)
    if kind == "person":
        from livestyle.pipeline.masks.person import open_person_segmenter

        return open_person_segmenter(person)
    raise ConfigError(f"unknown mask {kind!r}; choose one of: {', '.join(MASK_KINDS)}")
