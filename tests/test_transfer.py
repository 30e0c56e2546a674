"""The chunk's host <-> device transfers (livestyle.diffusion.transfer, issue 24): one uint8 upload,
one uint8 download with the chunk's small values riding along, outputs identical to the path before."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pipeline_helpers import tiny_wan_pipeline

from livestyle.errors import PipelineError
from livestyle.diffusion.chunking import frames_to_pixels, pixels_to_images, pixels_to_uint8
from livestyle.engine.frames import Frame
from livestyle.diffusion.transfer import ChunkTransfer

CPU = torch.device("cpu")


def images(n: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


def frames_of(imgs: list[np.ndarray]) -> list[Frame]:
    return [Frame(im, i, Fraction(1, 30), 0.0, i) for i, im in enumerate(imgs)]


def old_frames_to_pixels(frames: list[Frame], width: int, height: int, dtype: torch.dtype) -> torch.Tensor:
    """The conversion as it was before the transfer module (np.stack, then the same device ops)."""
    x = torch.from_numpy(np.stack([f.image for f in frames])).permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return (x / 127.5 - 1.0).permute(1, 0, 2, 3).unsqueeze(0).to(dtype)


def old_pixels_to_images(pixels: torch.Tensor, width: int, height: int) -> list[np.ndarray]:
    x = pixels[0].permute(1, 0, 2, 3).float()
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [np.ascontiguousarray(a) for a in x.permute(0, 2, 3, 1).contiguous().cpu().numpy()]


def test_upload_is_one_uint8_stack_of_the_frames() -> None:
    imgs = images(4, 40, 24)
    imgs[1].setflags(write=False)  # a source may hand out read-only buffers (e.g. decoded frames)
    up = ChunkTransfer(CPU).upload(imgs)
    assert up.dtype == torch.uint8 and up.shape == (4, 24, 40, 3) and up.is_contiguous()
    assert np.array_equal(up.numpy(), np.stack(imgs))


def test_upload_refuses_empty_and_mixed_size_chunks() -> None:
    xfer = ChunkTransfer(CPU)
    with pytest.raises(PipelineError, match="at least one frame"):
        xfer.upload([])
    with pytest.raises(PipelineError, match="differ in size"):
        xfer.upload([*images(1, 40, 24), *images(1, 32, 24)])


def test_download_gives_contiguous_frame_views_and_the_small_values() -> None:
    dev = torch.randint(0, 256, (3, 16, 24, 3), dtype=torch.uint8)
    arr, values = ChunkTransfer(CPU).download(dev, torch.tensor([1, 7, 9]))
    assert arr.shape == (3, 16, 24, 3) and np.array_equal(arr, dev.numpy())
    assert values is not None and values.tolist() == [1, 7, 9]
    assert all(a.flags.c_contiguous and a.dtype == np.uint8 for a in list(arr))
    with pytest.raises(PipelineError, match="uint8"):
        ChunkTransfer(CPU).download(dev.float())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("source", [(64, 48), (80, 56)])
def test_pixels_both_ways_are_bit_identical_to_the_path_before(dtype: torch.dtype, source: tuple[int, int]) -> None:
    frames = frames_of(images(5, *source, seed=1))
    xfer = ChunkTransfer(CPU)
    pixels = frames_to_pixels(frames, 64, 48, CPU, dtype, xfer)
    assert torch.equal(pixels, old_frames_to_pixels(frames, 64, 48, dtype))
    decoded = torch.rand(1, 3, 5, 48, 64, generator=torch.Generator().manual_seed(2)).to(dtype) * 2.2 - 1.1
    new, old = pixels_to_images(decoded, *source, xfer), old_pixels_to_images(decoded, *source)
    assert len(new) == 5 and all(np.array_equal(a, b) and a.flags.c_contiguous for a, b in zip(new, old))
    assert pixels_to_uint8(decoded, *source).shape == (5, source[1], source[0], 3)


@pytest.mark.parametrize("steps", [1, 2])
def test_the_kv_positions_ride_on_the_frame_download(steps: int) -> None:
    """stats() reports the KV positions of the last chunk: from the download when frames came out,
    from the cache itself on the stream-batch warm-up chunks that return none."""
    pipe = tiny_wan_pipeline(64, 48, steps=steps)
    index, held = 0, []
    for _ in range(4):
        k = pipe.frames_needed()
        out = pipe.process([Frame(im, index + i, Fraction(1, 30), 0.0, index + i) for i, im in enumerate(images(k, 64, 48, index))])
        index += k
        cache = pipe._state.cache
        assert cache is not None
        stats = pipe.stats()
        assert stats["kv_next_frame"] == cache.next_frame.tolist()
        assert stats["kv_next_position"] == cache.next_pos.tolist()
        held += [(f, f.image.copy()) for f in out]
        assert all(f.image.dtype == np.uint8 and f.image.flags.c_contiguous and f.image.shape == (48, 64, 3) for f in out)
    # frames handed out earlier are not overwritten by later chunks (sinks hold them for a while)
    assert held and all(np.array_equal(f.image, copy) for f, copy in held)
    assert pipe._transfer.uploads == 4 and pipe._transfer.downloads == len({id(f.image.base) for f, _ in held})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned staging needs CUDA")
def test_pinned_staging_on_cuda_round_trips_and_keeps_earlier_outputs() -> None:
    dev = torch.device("cuda")
    xfer = ChunkTransfer(dev)
    assert xfer.pinned
    outs = []
    for seed in range(4):
        imgs = images(4, 64, 48, seed)
        up = xfer.upload(imgs)
        assert up.device.type == "cuda"
        arr, values = xfer.download(up, torch.arange(3, device=dev))
        assert np.array_equal(arr, np.stack(imgs)) and values is not None and values.tolist() == [0, 1, 2]
        outs.append((arr, np.stack(imgs)))
    assert all(np.array_equal(a, b) for a, b in outs)
    assert xfer._staging[0].tensor.is_pinned() and len(xfer._staging) == 2
