"""livestyle: live video re-styling with a causal, KV-cached Wan 2.1 video diffusion transformer."""

__version__ = "0.1.0"
