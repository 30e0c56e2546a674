"""Writers of tiny random checkpoints for the model stack around the DiT, in the real on-disk formats.

Each writer produces exactly the layout the real release uses, so the real loaders read it:

- Wan VAE: ``Wan2.1_VAE.pth`` (original keys, pickled dict) and diffusers ``vae/``
  (``config.json`` + ``diffusion_pytorch_model.safetensors``, ``AutoencoderKLWan`` keys).
- TAEHV: ``taew2_1.pth`` and ``taew2_1.safetensors`` (``encoder.N.*`` / ``decoder.N.*``), with the
  released checkpoint's wider stride-1 ``TGrow`` layer so the loader's slicing is exercised.
- umT5 encoder: Wan's ``models_t5_umt5-xxl-enc-bf16.pth`` (bf16, Wan keys) and a transformers
  ``text_encoder/`` folder (``config.json`` + ``model.safetensors``, ``UMT5EncoderModel`` keys).
- Tokenizer: a ``google/umt5-xxl``-style folder (``spiece.model``, ``tokenizer.json``,
  ``tokenizer_config.json``, ``special_tokens_map.json``) built from a sentencepiece model trained
  here on a small corpus.

Weights are random (seeded); values are scaled so activations stay in a sensible range.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = [
    "TINY_TEXT_DIM",
    "random_taehv",
    "random_umt5_wan_state",
    "random_wan_vae",
    "tiny_umt5_config",
    "write_taehv",
    "write_tokenizer",
    "write_umt5_transformers",
    "write_umt5_wan_pth",
    "write_wan_vae_diffusers",
    "write_wan_vae_pth",
]

TINY_TEXT_DIM = 32
"""d_model of the tiny umT5 (the tiny DiT's ``text_dim``)."""


def _randomize(module: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1 or name.endswith("gamma"):
                p.copy_(1.0 + 0.2 * torch.rand(p.shape, generator=gen) - 0.1)
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)


# -- Wan VAE ------------------------------------------------------------------------------------


def random_wan_vae(config_name: str = "tiny", seed: int = 0) -> torch.nn.Module:
    """A :class:`~livestyle.models.vae.WanVAE` of the named config with random weights (fp32)."""
    from livestyle.models.vae import VAE_CONFIGS, WanVAE

    model = WanVAE(VAE_CONFIGS[config_name])
    _randomize(model, seed)
    return model.eval()


def write_wan_vae_pth(path: str | Path, *, config_name: str = "tiny", seed: int = 0) -> Path:
    """Write ``Wan2.1_VAE.pth``-style: a pickled dict with the original key names (fp32)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(random_wan_vae(config_name, seed).state_dict()), path)
    return path


def write_wan_vae_diffusers(folder: str | Path, *, config_name: str = "tiny", seed: int = 0) -> Path:
    """Write a diffusers ``vae/`` folder: ``config.json`` and ``diffusion_pytorch_model.safetensors``."""
    from safetensors.torch import save_file

    from livestyle.models.vae import LATENTS_MEAN, LATENTS_STD
    from livestyle.models.vae_loading import original_to_diffusers_key

    model = random_wan_vae(config_name, seed)
    cfg = model.config
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {original_to_diffusers_key(k, cfg.num_res_blocks): v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "diffusion_pytorch_model.safetensors"))
    config = {
        "_class_name": "AutoencoderKLWan",
        "_diffusers_version": "0.33.0.dev0",
        "attn_scales": [],
        "base_dim": cfg.dim,
        "dim_mult": list(cfg.dim_mult),
        "dropout": 0.0,
        "latents_mean": list(LATENTS_MEAN),
        "latents_std": list(LATENTS_STD),
        "num_res_blocks": cfg.num_res_blocks,
        "temperal_downsample": list(cfg.temporal_downsample),
        "z_dim": cfg.z_dim,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


# -- TAEHV ----------------------------------------------------------------------------------------


def random_taehv(config_name: str = "tiny", seed: int = 0) -> torch.nn.Module:
    """A :class:`~livestyle.models.taehv.TAEHV` of the named config with random weights (fp32)."""
    from livestyle.models.taehv import TAEHV, TAEHV_CONFIGS

    model = TAEHV(TAEHV_CONFIGS[config_name])
    _randomize(model, seed)
    return model.eval()


def write_taehv(path: str | Path, *, config_name: str = "tiny", seed: int = 0) -> Path:
    """Write ``taew2_1.pth`` (pickled dict) or ``taew2_1.safetensors`` (by suffix).

    The stride-1 ``TGrow`` at ``decoder.7`` is written with twice its output channels, like the
    released file, with the real weights in the last half.
    """
    from safetensors.torch import save_file

    model = random_taehv(config_name, seed)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    key = "decoder.7.conv.weight"
    state[key] = torch.cat([torch.randn_like(state[key]), state[key]], 0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


# -- umT5 -----------------------------------------------------------------------------------------


def tiny_umt5_config(vocab_size: int = 384, d_model: int = TINY_TEXT_DIM) -> object:
    """A ``transformers.UMT5Config`` with Wan's umT5 structure at toy size (2 layers, 4 heads x 8)."""
    from transformers import UMT5Config

    return UMT5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=8,
        d_ff=48,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        layer_norm_epsilon=1e-6,
        pad_token_id=0,
        eos_token_id=1,
        is_encoder_decoder=False,
        use_cache=False,
    )


def random_umt5_wan_state(vocab_size: int = 384, d_model: int = TINY_TEXT_DIM, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights of a tiny umT5 encoder with Wan's key names (``token_embedding``, ``blocks.i.*``, ``norm``), fp32."""
    cfg = tiny_umt5_config(vocab_size, d_model)
    gen = torch.Generator().manual_seed(seed)
    inner = cfg.num_heads * cfg.d_kv

    def w(*shape: int, scale: float | None = None) -> torch.Tensor:
        s = scale if scale is not None else shape[-1] ** -0.5
        return torch.randn(shape, generator=gen) * s

    def norm(n: int) -> torch.Tensor:
        return 1.0 + 0.2 * torch.rand(n, generator=gen) - 0.1

    state: dict[str, torch.Tensor] = {"token_embedding.weight": w(vocab_size, d_model, scale=1.0)}
    for i in range(cfg.num_layers):
        p = f"blocks.{i}."
        state[p + "norm1.weight"] = norm(d_model)
        for name in "qkv":
            state[p + f"attn.{name}.weight"] = w(inner, d_model)
        state[p + "attn.o.weight"] = w(d_model, inner)
        state[p + "norm2.weight"] = norm(d_model)
        state[p + "ffn.gate.0.weight"] = w(cfg.d_ff, d_model)
        state[p + "ffn.fc1.weight"] = w(cfg.d_ff, d_model)
        state[p + "ffn.fc2.weight"] = w(d_model, cfg.d_ff)
        state[p + "pos_embedding.embedding.weight"] = w(cfg.relative_attention_num_buckets, cfg.num_heads, scale=0.5)
    state["norm.weight"] = norm(d_model)
    return state


def write_umt5_wan_pth(path: str | Path, *, vocab_size: int = 384, d_model: int = TINY_TEXT_DIM, seed: int = 0) -> Path:
    """Write ``models_t5_umt5-xxl-enc-bf16.pth``-style: a pickled dict of bf16 tensors with Wan's keys."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.to(torch.bfloat16) for k, v in random_umt5_wan_state(vocab_size, d_model, seed).items()}
    torch.save(state, path)
    return path


def write_umt5_transformers(folder: str | Path, *, vocab_size: int = 384, d_model: int = TINY_TEXT_DIM, seed: int = 0) -> Path:
    """Write a transformers/diffusers ``text_encoder/`` folder (``config.json`` + ``model.safetensors``), same weights as the .pth writer."""
    from safetensors.torch import save_file

    from livestyle.models.text import wan_to_transformers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = tiny_umt5_config(vocab_size, d_model)
    cfg.architectures = ["UMT5EncoderModel"]
    state = wan_to_transformers(random_umt5_wan_state(vocab_size, d_model, seed))
    state.pop("encoder.embed_tokens.weight")  # tied to shared.weight, as transformers saves it
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in state.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    cfg.save_pretrained(str(folder))
    return folder


# -- tokenizer ------------------------------------------------------------------------------------

_CORPUS = (
    "a watercolor painting of a city at night with soft brush strokes",
    "an oil painting, thick impasto, warm colors, a person talking to the camera",
    "cyberpunk neon street, rain, reflections, cinematic lighting",
    "a pencil sketch of a cat sitting on a wooden table in the morning sun",
    "anime style portrait, cel shading, clean lines, vibrant background",
    "claymation character waving, stop motion, plasticine texture",
    "un tableau impressionniste d'un jardin en fleurs au printemps",
    "ein Gemälde im Stil des Expressionismus mit kräftigen Farben",
    "低多边形风格的山脉和湖泊, 柔和的光线",
    "pixel art landscape with mountains, trees, rivers and a small village",
)


def write_tokenizer(folder: str | Path, *, vocab_size: int = 384) -> Path:
    """Write a ``google/umt5-xxl``-style tokenizer folder built from a sentencepiece unigram model trained here.

    Special ids follow umT5: 0 ``<pad>``, 1 ``</s>``, 2 ``<unk>``. The folder holds ``spiece.model``
    plus ``tokenizer.json`` and ``tokenizer_config.json`` saved by transformers' ``T5Tokenizer``
    (the hub copy has the same files) and loads with ``AutoTokenizer``.
    """
    import io

    import sentencepiece as spm
    from transformers import T5Tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    corpus = [line for _ in range(20) for line in _CORPUS]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=2,
        num_threads=1,
    )
    spiece = folder / "spiece.model"
    spiece.write_bytes(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tok = T5Tokenizer(vocab=vocab, extra_ids=0)
    tok.save_pretrained(str(folder))
    return folder
