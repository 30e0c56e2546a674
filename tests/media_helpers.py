"""Writing test clips and reading recordings back with PyAV, for the tests that go through real
encoders, muxers and decoders; and the tone-with-clicks signal the audio-sync tests listen for.

Import as a sibling module (``from media_helpers import write_h264``), like ``host_canary``. PyAV
is imported when a function needs it, so importing this module never fails; the test modules
that use it call ``pytest.importorskip("av")`` first.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

TONE_HZ = 440.0
CLICK_HZ = 3000.0

GREEN = (0, 177, 64)  # the green screen of write_green_clip (RGB)
SKIN = (224, 172, 140)  # its subject
GREEN_CLIP_W, GREEN_CLIP_H, GREEN_CLIP_N = 160, 96, 8  # its size and frame count


def write_h264(path: Path, images: Sequence[np.ndarray], *, fps: int | Fraction = 30,
               options: dict[str, str] | None = None) -> Path:
    """An H.264 file (libx264, yuv420p, container from the suffix) of ``images``: uint8 RGB
    ``[H, W, 3]``, all one size (even sides), frame i at pts i in a 1/``fps`` time base, the
    encoder drained at the end. ``options`` go to libx264 (e.g. ``{"crf": "0"}``). Returns ``path``."""
    import av

    height, width = images[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_green_clip(path: Path) -> Path:
    """A green screen with a skin-coloured subject block (cols 48..111, rows 16 down) in every
    frame: GREEN_CLIP_N frames of GREEN_CLIP_W x GREEN_CLIP_H at 24 fps, lossless H.264."""
    img = np.empty((GREEN_CLIP_H, GREEN_CLIP_W, 3), np.uint8)
    img[:] = GREEN
    img[16:, 48:112] = SKIN
    return write_h264(path, [img] * GREEN_CLIP_N, fps=Fraction(24), options={"crf": "0", "preset": "ultrafast"})


def decoded_rgb(path: Path) -> list[np.ndarray]:
    """Every frame of the file's first video stream, decoded to uint8 RGB ``[H, W, 3]``, in order."""
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def tone_with_clicks(t: np.ndarray, clicks: Sequence[float]) -> np.ndarray:
    """The audio-sync signal at times ``t`` (seconds, float64): a 440 Hz tone at amplitude 0.2,
    replaced for 30 ms from each time in ``clicks`` by a 3 kHz burst at amplitude 0.9 (|x| > 0.6
    finds a click, and only a click)."""
    wave = 0.2 * np.sin(2 * np.pi * TONE_HZ * t)
    for at in clicks:
        on = (t >= at) & (t < at + 0.03)
        wave[on] = 0.9 * np.sin(2 * np.pi * CLICK_HZ * t[on])
    return wave


def read_audio_video(path: str, **open_kwargs: Any) -> dict[str, Any]:
    """Video frame times and brightness, decoded audio (mono float) and its start time.

    Keys: ``times`` (s) and ``means`` (mean grey 0-255) per video frame; ``audio`` (float32, the
    first channel of the first audio stream, empty without one), ``audio_start`` (s) and ``rate``
    (None without audio); ``has_audio``; ``codec`` (the audio codec's name or None).
    ``open_kwargs`` go to ``av.open`` (e.g. ``format=``, ``timeout=`` for a stream URL).
    """
    import av

    with av.open(path, **open_kwargs) as container:
        vstream = container.streams.video[0]
        astreams = container.streams.audio
        times, means = [], []
        chunks: list[np.ndarray] = []
        audio_start, rate = None, None
        streams = [vstream, *astreams[:1]]
        for packet in container.demux(*streams):
            for frame in packet.decode():
                if packet.stream is vstream:
                    times.append(float(frame.pts * vstream.time_base))
                    means.append(float(frame.to_ndarray(format="gray").mean()))
                else:
                    if audio_start is None:
                        audio_start = float(frame.pts * astreams[0].time_base)
                        rate = frame.sample_rate
                    chunks.append(frame.to_ndarray().astype(np.float32).reshape(len(frame.layout.channels), -1)[0])
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return {"times": times, "means": means, "audio": audio, "audio_start": audio_start, "rate": rate,
                "has_audio": bool(astreams), "codec": astreams[0].codec_context.name if astreams else None}


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency (Hz) in ``samples`` at ``rate`` samples/s (Hann-windowed FFT peak)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])
