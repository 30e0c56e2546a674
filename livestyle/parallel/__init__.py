"""Pipeline-parallel streams: one stream over several GPUs (``--gpus N``), the DiT's blocks split
into stages, one process per device (docs/architecture.md, "Pipeline-parallel stages").

- ``open.py``: ``open_parallel`` (checks, the split, the stages, the front), what ``generators`` calls;
- ``front.py``: ``ParallelStream``, the Generator the engine runs, in the command's process;
- ``launch.py``: spawning the stages (or joining torchrun), devices, backends, stopping;
- ``worker.py``: a stage process's main (process group, parent watch, the later stages' loop);
- ``first_stage.py``: rank 0's loop (chunks and calls in, micro-steps out, results back);
- ``schedule.py``: the micro-step plan (``Conductor``): exactly the one-process arithmetic;
- ``stage.py`` / ``stage_dit.py``: a stage's KV caches and its share of the DiT's forward;
- ``transport.py``: records over ``torch.distributed`` point-to-point ops; ``protocol.py``: shared bits.

The split itself (``planning/stage_split.py``) is pure planning, shared with ``livestyle budget --gpus N``.
"""
