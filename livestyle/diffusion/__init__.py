"""The diffusion pipeline: one causal, KV-cached Wan DiT stream behind the engine's ``Generator``.

``stream.StreamPipeline`` (the chunk loop), ``denoise`` (the denoising steps and the stream batch),
``stream_state`` (what a stream remembers), ``noise``, ``chunking``, ``prompts`` and
``prompt_worker``, ``loras``, ``family`` (checkpoint-family defaults), ``transfer`` and
``timing`` (host/device copies, stage timing), ``open`` (real checkpoints) and
``random_models`` (random weights at real shapes for benchmarks). Imports the engine and
``livestyle.models``; never the I/O, control or CLI layers.
"""
