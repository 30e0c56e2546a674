"""``ndi://NAME``: an NDI® sender that OBS (DistroAV), vMix, Resolume or another PC receive.

Frames go out as NDI does: uncompressed RGBX handed to the NDI runtime (``cyndilib``), which
compresses them with its own codec for the network. The sender is not clocked by NDI
(``clock_video=False``): the runner already writes each frame at its due time and drops late
ones before they reach this sink, so NDI's clock would only add a second wait. Every frame
carries the stream's frame rate (``30000/1001`` for 29.97) and an NDI-synthesised timecode, which
NDI spaces by that rate, so receivers see no drift. Receivers come and go freely: a receiver
that disappears never blocks or fails this sink (NDI serves any number of them).

Audio (optional): the source's audio goes out as NDI float audio, each chunk sent once the video
has reached its time (the video's delay through the pipeline), or once it is ``MAX_LEAD_S``
ahead (the video stalled), so receivers play the two in step.

NDI® is a registered trademark of Vizrt NDI AB (https://ndi.video/).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np

from livestyle.errors import SinkError
from livestyle.ndi import NdiSpec, frame_rate, load_cyndilib, parse_ndi_spec
from livestyle.engine.frames import AudioChunk, AudioInfo, Frame, StreamInfo

__all__ = ["MAX_LEAD_S", "NdiSink", "open_ndi_sink"]

MAX_LEAD_S = 2.0
"""Seconds of audio held ahead of the video before it is sent anyway."""
AUDIO_BLOCK = 4800
"""Most samples per NDI audio frame (0.1 s at 48 kHz)."""


class NdiSink:
    """Sends frames (``uint8 [H, W, 3]`` RGB) as the NDI sender ``NAME``.

    Args:
        spec: the parsed ``ndi://NAME`` spec.
        fps: the announced frame rate; None: the source's rate.
    """

    def __init__(self, spec: NdiSpec, *, fps: float | None = None) -> None:
        self.name = spec.url
        self._spec = spec
        self._fps = fps
        self._lock = threading.Lock()
        self._sender: Any = None
        self._buffer: np.ndarray | None = None
        self._audio: AudioInfo | None = None
        self._pending: deque[AudioChunk] = deque()
        self._video_seconds: float | None = None
        self.frames_written = 0
        self.audio_samples_written = 0

    @property
    def source_name(self) -> str | None:
        """The full name receivers see (``HOST (NAME)``), once open."""
        return None if self._sender is None else str(self._sender.name)

    def open_audio(self, info: AudioInfo) -> bool:
        self._audio = info
        return True

    def open(self, info: StreamInfo) -> None:
        cyndilib = load_cyndilib(SinkError, self._spec.ips)
        sender = cyndilib.Sender(self._spec.name, ndi_groups=self._spec.groups,
                                 clock_video=False, clock_audio=False)
        video = cyndilib.VideoSendFrame()
        video.set_resolution(info.width, info.height)
        video.set_frame_rate(frame_rate(self._fps or info.fps))
        video.set_fourcc(cyndilib.FourCC.RGBX)
        sender.set_video_frame(video)
        if self._audio is not None:
            audio = cyndilib.AudioSendFrame(max_num_samples=AUDIO_BLOCK)
            audio.sample_rate = self._audio.sample_rate
            audio.num_channels = self._audio.channels
            sender.set_audio_frame(audio)
        try:
            sender.open()
        except Exception as exc:  # noqa: BLE001 - cyndilib raises plain Exception/RuntimeError
            raise SinkError(f"{self.name}: the NDI sender did not start ({exc})") from exc
        buffer = np.empty((info.height, info.width, 4), np.uint8)
        buffer[..., 3] = 255
        with self._lock:
            self._sender, self._buffer = sender, buffer

    def write(self, frame: Frame) -> None:
        """Send one frame now (the runner has timed it), then the audio it has reached."""
        with self._lock:
            sender, buffer = self._sender, self._buffer
            if sender is None or buffer is None:
                raise SinkError(f"{self.name}: write() after close() or before open()")
            if frame.image.shape[:2] != buffer.shape[:2]:
                raise SinkError(f"{self.name}: frame is {frame.width}x{frame.height}, the sender "
                                f"was opened at {buffer.shape[1]}x{buffer.shape[0]}")
            buffer[..., :3] = frame.image
            if not sender.write_video(buffer.reshape(-1)):
                raise SinkError(f"{self.name}: the NDI sender stopped")
            self.frames_written += 1
            self._video_seconds = frame.seconds
            self._send_due_audio()

    def write_audio(self, chunk: AudioChunk) -> None:
        """Queue a chunk (``float32 [C, n]``); it leaves with the video frame of its time."""
        with self._lock:
            if self._sender is None or self._audio is None:
                return
            self._pending.append(chunk)
            self._send_due_audio()

    def _send_due_audio(self) -> None:
        """Send queued audio the video has reached (or that is ``MAX_LEAD_S`` ahead); under the lock."""
        while self._pending:
            chunk = self._pending[0]
            reached = self._video_seconds is not None and chunk.seconds <= self._video_seconds
            lead = chunk.seconds - (self._video_seconds if self._video_seconds is not None else chunk.seconds)
            if not reached and lead < MAX_LEAD_S and len(self._pending) < 1000:
                return
            self._pending.popleft()
            samples = np.ascontiguousarray(chunk.samples, dtype=np.float32)
            for start in range(0, samples.shape[1], AUDIO_BLOCK):
                self._sender.write_audio(np.ascontiguousarray(samples[:, start:start + AUDIO_BLOCK]))
            self.audio_samples_written += samples.shape[1]

    def close(self) -> None:
        """Stop announcing the sender; idempotent, safe from any thread."""
        with self._lock:
            sender, self._sender = self._sender, None
            self._pending.clear()
        if sender is not None:
            sender.close()


def open_ndi_sink(spec: str, *, fps: float | None) -> NdiSink:
    """An NDI sink for ``ndi://NAME[?ips=...&groups=...]`` (cyndilib is loaded at ``open``)."""
    return NdiSink(parse_ndi_spec(spec, SinkError), fps=fps)
