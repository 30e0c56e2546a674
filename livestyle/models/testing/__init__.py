"""Tiny random checkpoints written in the real file formats, for tests, the `tiny` model and benchmarks.

Nothing here is used on the real-weights path; it only writes files that the real loaders read.
"""
