"""Planning before a stream starts: the budget planner (``budget``), the automatic model/settings
choice (``auto``), the GPU facts it reads (``gpu``) and the start-up time history
(``startup_history``). No torch at import time; imports neither the engine's runner nor the I/O layers."""
