"""Random-weight models: the one home of the builders for tests, the `tiny` model and benchmarks.

- ``dit``, ``stack``, ``lora``: tiny random checkpoints written in the real file formats, which
  the real loaders read (tests and the registry's ``tiny`` model).
- ``on_device``: random models at their real sizes, built directly on the device in the compute
  dtype (benchmarks; ``livestyle.diffusion.random_models`` assembles them into a stream's stack).

Nothing here is used on the real-weights path.
"""
