"""Background effects: style only the background, or only the person, of each frame.

:class:`EffectGenerator` wraps any :class:`~livestyle.engine.frames.Generator` (bypass, the tiny
model, a real StreamPipeline). For every input frame it computes the subject mask when the frame
goes in and keeps it, with the camera picture, keyed by the frame's ``index`` in a bounded map.
Each styled frame that comes out of the inner generator (possibly chunks later, under
stream-batch delay) is composited with the mask and camera picture of the *same* input frame:

    out = camera + w * (styled - camera),   w = 1 - subject (background) | subject (person)

With ``effects.fill = "blur"`` the effect's region shows the camera picture blurred
(:func:`blurred`, ``effects.blur`` px) instead of the styled frame: ``background`` is the
video-call background blur (run it with the ``passthrough`` model; the generator's pixels are not
used), ``person`` blurs the person.

Masks are smoothed over time (EMA restarted on scene cuts), feathered (Gaussian, ``feather`` px of
the frame) and resized to the frame size (:func:`~livestyle.effects.masks.base.fit_mask`: same
aspect ratio → resized, different → :class:`PipelineError`); a mask smaller than the frame is
smoothed and feathered at its own size and enlarged last, which is cheaper. ``full`` skips all of it.

Empty masks are not errors: no person in frame (subject all 0) → ``background`` styles the whole
frame, ``person`` keeps the whole camera frame; no key colour in frame (subject all 1) →
``background`` keeps the whole camera frame, ``person`` styles it all.

With ``keep_hint`` the input frames handed to the inner generator carry
``Frame.extras["keep_mask"]`` (``float32`` ``[H, W]`` in ``[0, 1]``, 1 = these pixels will show
the camera) and ``Frame.extras["keep_strength"]`` (``effects.keep_strength``), which a generator
may use to spend less noise/compute there (the StreamPipeline injects less noise there); masks are then computed
before the generator runs. Without it (the default) they are computed on a worker thread while
the generator runs, so their cost hides behind a GPU generator's. ``preview`` tints the
background region of every output frame; in bypass the runner shows :meth:`EffectGenerator.bypassed`
frames, the camera with the same tint, so the key can be tuned without the generator.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal

import cv2
import numpy as np

from livestyle.config import EffectsConfig
from livestyle.errors import (
    CommandRefusedError,
    ControlError,
    LivestyleError,
    PipelineError,
)
from livestyle.engine.commands import Reset, SetEffect, SetLora
from livestyle.engine.frames import Frame, Generator
from livestyle.effects.masks import MaskProvider, open_mask_provider
from livestyle.effects.masks.base import fit_mask
from livestyle.effects.masks.overlay import mask_overlay
from livestyle.effects.masks.smoothing import TemporalSmoother, feather

__all__ = ["EFFECTS", "Effect", "EffectGenerator", "blurred", "composite", "prepare_mask"]

Effect = Literal["full", "background", "person"]
EFFECTS: tuple[str, ...] = ("full", "background", "person")


@dataclass(frozen=True, slots=True)
class _Pending:
    camera: np.ndarray  # uint8 [H, W, 3], the (cleaned) input picture
    subject: np.ndarray  # float32 [H, W] in [0, 1], smoothed and feathered


def composite(styled: np.ndarray, camera: np.ndarray, subject: np.ndarray, effect: Effect) -> np.ndarray:
    """Blend ``styled`` and ``camera`` (``uint8`` ``[H, W, 3]``, same size) by ``subject`` (``float32`` ``[H, W]``).

    ``background``: styled where ``subject`` is 0; ``person``: styled where it is 1; ``full``: ``styled``.
    """
    if effect == "full":
        return styled
    assert styled.shape == camera.shape and subject.shape == styled.shape[:2], f"{styled.shape=} {camera.shape=} {subject.shape=}"
    w_styled = subject if effect == "person" else 1.0 - subject
    return cv2.blendLinear(styled, camera, w_styled, 1.0 - w_styled)


def prepare_mask(
    mask: np.ndarray, smoother: TemporalSmoother, feather_px: float, height: int, width: int, source: str = "mask provider"
) -> np.ndarray:
    """A provider's mask → the subject mask composited: ``float32`` ``[height, width]`` in ``[0, 1]``.

    Validated (:func:`fit_mask`), smoothed over time (``smoother``), feathered by ``feather_px``
    pixels of the frame and enlarged to the frame; a mask smaller than the frame is smoothed and
    feathered at its own size (the feather scaled with it) and enlarged once, last.
    """
    subject = fit_mask(mask, height, width, source=source, keep_smaller=True)
    subject = feather(smoother.update(subject), feather_px * subject.shape[1] / width)
    if subject.shape != (height, width):
        subject = cv2.resize(subject, (width, height), interpolation=cv2.INTER_LINEAR)
    return subject


def blurred(image: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` (``uint8`` ``[H, W, 3]``) Gaussian-blurred by about ``sigma`` pixels, cheaply.

    For ``sigma`` >= 6 the picture is shrunk by ``k = sigma // 3`` (area), blurred by ``sigma / k``
    and enlarged back (bilinear): close to a full-size blur (a few levels of 255 apart) at a
    fraction of its cost, about 1 ms for 640x480 on one core.
    """
    h, w = image.shape[:2]
    k = max(1, min(int(sigma // 3), h // 4, w // 4))
    if k == 1:
        return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
    small = cv2.resize(image, (w // k, h // k), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma / k, sigmaY=sigma / k, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


class EffectGenerator:
    """A Generator that applies a background effect around an inner Generator (module docstring)."""

    def __init__(self, inner: Generator, config: EffectsConfig, provider: MaskProvider | None = None) -> None:
        self.inner = inner
        self.config = config
        self.name = inner.name
        self.effect: Effect = config.mode
        self._provider = provider
        self._provider_lock = threading.Lock()
        self._smoother = TemporalSmoother(config.smoothing, config.cut_threshold)
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._mask_s = 0.0
        self._composite_s = 0.0
        self._masked_frames = 0
        self._composited_frames = 0
        self._evicted = 0
        self._unmasked_upto = -1
        self._pool: ThreadPoolExecutor | None = None
        if self._mask_active():
            self._open_provider()

    # -- Generator protocol -------------------------------------------------------------------

    def frames_needed(self) -> int:
        return self.inner.frames_needed()

    def process(self, frames: Sequence[Frame]) -> list[Frame]:
        """Mask each input frame, run the inner generator, composite each output with its own frame's mask.

        With ``keep_hint`` the masks are computed first (the inner generator reads them); without
        it they are computed on a worker thread while the inner generator runs, so a GPU
        generator hides their CPU cost.
        """
        if not self._mask_active():
            if frames:
                self._unmasked_upto = max(self._unmasked_upto, frames[-1].index)
            outputs = self.inner.process(frames)
        elif self.config.keep_hint and self.effect != "full":
            outputs = self.inner.process([self._with_keep(f, self._take_in(f)) for f in frames])
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="livestyle-mask")
            masking = self._pool.submit(lambda: [self._take_in(f) for f in frames])
            try:
                outputs = self.inner.process(frames)
            finally:
                masking.result()
        return [self._put_out(o) for o in outputs]

    def apply(self, command: object) -> None:
        """Every command goes to the inner generator too; ``SetEffect`` and ``Reset`` also act here.

        A ``SetEffect`` whose mask provider cannot be opened is refused (:class:`ControlError`)
        and the effect stays as it was.
        """
        if isinstance(command, SetEffect):
            if command.value not in EFFECTS:
                raise ControlError(f"unknown effect {command.value!r}; choose one of: {', '.join(EFFECTS)}")
            previous, self.effect = self.effect, command.value
            if self._mask_active() and self._provider is None:
                try:
                    self._open_provider()
                except LivestyleError as exc:
                    self.effect = previous
                    raise ControlError(f"cannot switch to effect {command.value!r}: {exc}") from None
        if isinstance(command, Reset):
            self._forget()
        self.inner.apply(command)

    def precondition(self, command: object) -> None:
        """Refuse, before it is queued, a command this wrapper could not apply: ``SetEffect`` to a
        masked effect whose mask provider cannot be opened (no model downloaded, say). Opens the
        provider now (once; the stream then reuses it), so call it off the event loop.
        Raises :class:`CommandRefusedError` with the reason. ``SetLora`` goes to the inner
        generator's ``precondition`` (which reads and checks the files); a generator without one
        (passthrough, which ignores LoRAs as it ignores prompts) takes it as is."""
        if isinstance(command, SetLora):
            inner = getattr(self.inner, "precondition", None)
            if inner is not None:
                inner(command)
            return
        if not isinstance(command, SetEffect) or command.value == "full":
            return
        try:
            self._open_provider()
        except LivestyleError as exc:
            raise CommandRefusedError(f"cannot switch to effect {command.value!r}: {exc}") from None

    def bypassed(self, frame: Frame) -> Frame:
        """The frame shown while the runner bypasses the generator: the camera as is, or with the
        mask overlay when ``preview`` is on, so the key can be tuned during bypass too."""
        if not self.config.preview:
            return frame
        if self._provider is None:
            self._open_provider()
        t0 = time.perf_counter()
        _camera, subject = self._mask(frame)
        image = mask_overlay(frame.image, subject)
        self._mask_s += time.perf_counter() - t0
        self._masked_frames += 1
        return frame.with_image(image)

    def warmup(self, size: tuple[int, int]) -> None:
        """Warm the inner generator on the calling thread (see ``Runner``), when it can be."""
        warm = getattr(self.inner, "warmup", None)
        if callable(warm):
            warm(size)

    def reset(self) -> None:
        self._forget()
        self.inner.reset()

    def stats(self) -> dict[str, Any]:
        stats = dict(self.inner.stats())
        stats.update(
            effect=self.effect,
            mask=self._provider.name if self._provider is not None else None,
            mask_ms=1000.0 * self._mask_s / max(self._masked_frames, 1),
            composite_ms=1000.0 * self._composite_s / max(self._composited_frames, 1),
            masks_pending=len(self._pending),
            masks_evicted=self._evicted,
        )
        return stats

    # -- internals ----------------------------------------------------------------------------

    def _open_provider(self) -> None:
        with self._provider_lock:  # the API thread (precondition) and the generator thread
            if self._provider is None:
                self._provider = open_mask_provider(self.config.mask, self.config.chroma, self.config.person, self.config.selfie)

    def _mask_active(self) -> bool:
        return self.effect != "full" or self.config.preview

    def _forget(self) -> None:
        self._pending.clear()
        self._unmasked_upto = -1
        self._smoother.reset()
        if self._provider is not None:
            self._provider.reset()

    def _mask(self, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        """``frame``'s camera picture (``uint8`` ``[H, W, 3]``) and smoothed, feathered subject mask (``float32`` ``[H, W]``)."""
        assert self._provider is not None
        result = self._provider.compute(frame.image)
        source = f"mask provider {self._provider.name!r}"
        subject = prepare_mask(result.subject, self._smoother, self.config.feather, frame.height, frame.width, source)
        camera = frame.image if result.camera is None else result.camera
        if camera.shape != frame.image.shape:
            raise PipelineError(
                f"mask provider {self._provider.name!r} returned a {camera.shape} camera picture for a "
                f"{frame.image.shape} frame; it must match the frame"
            )
        return camera, subject

    def _take_in(self, frame: Frame) -> np.ndarray:
        """Compute, smooth and store ``frame``'s subject mask (``float32`` ``[H, W]``); return it."""
        t0 = time.perf_counter()
        camera, subject = self._mask(frame)
        self._pending[frame.index] = _Pending(camera=camera, subject=subject)
        while len(self._pending) > self.config.max_pending:
            self._pending.popitem(last=False)
            self._evicted += 1
        self._mask_s += time.perf_counter() - t0
        self._masked_frames += 1
        return subject

    def _with_keep(self, frame: Frame, subject: np.ndarray) -> Frame:
        keep = subject if self.effect == "background" else 1.0 - subject
        return replace(frame, extras={**frame.extras, "keep_mask": keep, "keep_strength": self.config.keep_strength})

    def _put_out(self, out: Frame) -> Frame:
        if not self._pending and not self._mask_active():
            return out
        entry = self._pending.pop(out.index, None)
        # Outputs come in input order: masks of older frames will never be asked for again.
        while self._pending and next(iter(self._pending)) < out.index:
            self._pending.popitem(last=False)
        if entry is None:
            if not self._mask_active() or out.index <= self._unmasked_upto:
                return out  # went in while the effect was "full": styled everywhere
            raise PipelineError(
                f"styled frame {out.index} has no mask: the generator {self.inner.name!r} must keep each input "
                f"frame's index on its output, and at most effects.max_pending={self.config.max_pending} frames may wait"
            )
        t0 = time.perf_counter()
        h, w = out.height, out.width
        camera, subject = entry.camera, entry.subject
        if camera.shape[:2] != (h, w):
            camera = cv2.resize(camera, (w, h), interpolation=cv2.INTER_AREA)
            subject = fit_mask(subject, h, w, source="effect")
        styled = blurred(camera, self.config.blur) if self.config.fill == "blur" else out.image
        image = composite(styled, camera, subject, self.effect)
        if self.config.preview:
            image = mask_overlay(image, subject)
        self._composite_s += time.perf_counter() - t0
        self._composited_frames += 1
        return out.with_image(image)

