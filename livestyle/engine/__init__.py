"""The real-time engine: frames in, chunks through any ``Generator``, frames out at a steady rate.

It knows frames, chunks, live commands and the ``Generator`` / ``Source`` / ``Sink`` protocols
(``frames``), never torch models: the runner and its threads (``runner``, ``channels``,
``sink_threads``), delivery pacing and the governor (``delivery``, ``governor``,
``live_settings``), metrics and reports, audio, resizing, and the model-free generators
(``passthrough``, ``synthetic``). ``tests/test_architecture.py`` holds it to importing neither
``torch`` nor ``livestyle.models`` (docs/architecture.md).
"""
