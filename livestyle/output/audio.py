"""The audio stream of a recording or stream URL: AAC, placed by pts, released with the video.

:class:`AudioTrack` belongs to one :class:`~livestyle.output.media.MediaSink` and is only used
under its lock. Audio chunks (``float32 [channels, n]``, pts on the video frames' timeline) are
mixed to mono or stereo, resampled when AAC cannot take the source's rate, and put at their
sample position counted from the first video frame's time (the output's zero):

* small jitter (up to ``JITTER_S``) is absorbed so the encoded audio stays gapless;
* a real gap is filled with silence, an overlap is cut from the newer chunk's head;
* audio before the first video frame, or past the last one when the sink closes, is cut, so a
  recording's two streams start and end together.

Samples are encoded only once the video has reached them (``advance``): in a live stream each
audio packet leaves with the video frame of the same time, so audio is held back by exactly the
video's delay through the pipeline, whatever it is. Audio more than ``max_lead`` seconds ahead of
the video (the video stalled) is encoded anyway, so memory stays bounded.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from typing import Any

import numpy as np

from livestyle.errors import SinkError
from livestyle.optional import require
from livestyle.engine.frames import AudioChunk, AudioInfo

__all__ = ["AAC_RATES", "JITTER_S", "AudioTrack", "mix_channels"]

AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
"""Sample rates the AAC encoder takes; other rates are resampled to 48 kHz."""

JITTER_S = 0.03
"""Timing differences up to this many seconds between chunks are jitter, not gaps or overlaps."""


def mix_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    """``samples`` (``float32 [C, n]``) as ``channels`` (1 or 2) channels.

    Mono from several channels is their mean; stereo from mono repeats it; stereo from more than
    two channels keeps the first two (front left and right in FFmpeg's layouts).
    """
    have = samples.shape[0]
    if have == channels:
        return samples
    if channels == 1:
        return samples.mean(axis=0, keepdims=True, dtype=np.float32)
    if have == 1:
        return np.repeat(samples, 2, axis=0)
    return samples[:2]


class AudioTrack:
    """One AAC stream in ``container``; create it before the container's header is written.

    Args:
        container: an ``av`` output container that has not started encoding.
        info: the source's audio (rate, channels).
        max_lead: seconds of audio held ahead of the video before it is encoded anyway.
    """

    def __init__(self, container: Any, info: AudioInfo, *, max_lead: float = 5.0) -> None:
        self.rate = info.sample_rate if info.sample_rate in AAC_RATES else 48000
        self.channels = 1 if info.channels == 1 else 2
        self._layout = "mono" if self.channels == 1 else "stereo"
        self._container = container
        self.stream = container.add_stream("aac", rate=self.rate, layout=self._layout)
        self.stream.codec_context.time_base = Fraction(1, self.rate)
        self._source_rate = info.sample_rate
        self._resampler: Any = None
        if info.sample_rate != self.rate:
            av = require("av", SinkError)
            self._resampler = av.AudioResampler(format="fltp", layout=self._layout, rate=self.rate)
        self._max_lead = round(max_lead * self.rate)
        self._jitter = round(JITTER_S * self.rate)
        self._origin: float | None = None
        self._early: deque[tuple[float, np.ndarray]] = deque()  # before the first video frame
        self._buf = np.zeros((self.channels, 0), np.float32)
        self._buf_start = 0  # sample index (from the output's zero) of _buf[:, 0]
        self._placed = False
        self._horizon = 0  # samples the video has reached
        self.samples_encoded = 0
        self.samples_padded = 0
        self.samples_cut = 0

    # -- input ---------------------------------------------------------------------------------

    def add(self, chunk: AudioChunk) -> None:
        """Take one chunk; encodes whatever the video has already reached."""
        samples = self._convert(chunk)
        if samples.shape[1] == 0:
            return
        if self._origin is None:
            self._early.append((chunk.seconds, samples))
            while sum(s.shape[1] for _, s in self._early) > self._max_lead:
                self.samples_cut += self._early.popleft()[1].shape[1]
            return
        self._place(chunk.seconds, samples)
        self._encode_ready()

    def set_origin(self, seconds: float) -> None:
        """The first video frame's time (source seconds): the output's zero."""
        if self._origin is not None:
            return
        self._origin = seconds
        while self._early:
            self._place(*self._early.popleft())

    def advance(self, video_end: float) -> None:
        """The video is written up to ``video_end`` seconds (output time); encode audio up to it."""
        self._horizon = max(self._horizon, round(video_end * self.rate))
        self._encode_ready()

    def finish(self) -> None:
        """Encode the audio up to the video's end, drop the rest, drain the encoder."""
        end = self._horizon - self._buf_start
        if end > 0:
            self._encode(min(end, self._buf.shape[1]))
        self.samples_cut += self._buf.shape[1]
        self._buf = self._buf[:, :0]
        self._container.mux(self.stream.encode(None))

    # -- internals -----------------------------------------------------------------------------

    def _convert(self, chunk: AudioChunk) -> np.ndarray:
        samples = np.asarray(chunk.samples, dtype=np.float32)
        samples = mix_channels(samples, self.channels)
        if self._resampler is None or chunk.sample_rate == self.rate:
            return np.ascontiguousarray(samples)
        av = require("av", SinkError)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=self._layout)
        frame.sample_rate = chunk.sample_rate
        out = [f.to_ndarray() for f in self._resampler.resample(frame)]
        return np.concatenate(out, axis=1) if out else np.zeros((self.channels, 0), np.float32)

    def _place(self, seconds: float, samples: np.ndarray) -> None:
        assert self._origin is not None
        start = round((seconds - self._origin) * self.rate)
        end = self._buf_start + self._buf.shape[1]
        if not self._placed:
            self._placed = True
            self._buf_start = end = max(0, start)
        if abs(start - end) <= self._jitter:
            start = end
        if start > end:  # a gap: silence keeps the stream continuous
            pad = np.zeros((self.channels, start - end), np.float32)
            self.samples_padded += pad.shape[1]
            self._buf = np.concatenate([self._buf, pad], axis=1)
        elif start < end:  # an overlap (or audio before the first frame): keep what came first
            cut = min(end - start, samples.shape[1])
            self.samples_cut += cut
            samples = samples[:, cut:]
        self._buf = np.concatenate([self._buf, samples], axis=1)

    def _encode_ready(self) -> None:
        size = self._frame_size()
        while self._buf.shape[1] >= size:
            reached = self._buf_start + size <= self._horizon
            if not reached and self._buf.shape[1] <= self._max_lead:
                return
            self._encode(size)

    def _encode(self, n: int) -> None:
        av = require("av", SinkError)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(self._buf[:, :n]), format="fltp",
                                           layout=self._layout)
        frame.sample_rate = self.rate
        frame.pts = self._buf_start
        frame.time_base = Fraction(1, self.rate)
        self._buf = self._buf[:, n:]
        self._buf_start += n
        self.samples_encoded += n
        self._container.mux(self.stream.encode(frame))

    def _frame_size(self) -> int:
        return int(self.stream.codec_context.frame_size or 1024)
