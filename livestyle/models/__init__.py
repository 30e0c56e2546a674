"""Pure torch model code: no threads, sockets or cameras. Imports nothing else of livestyle but errors."""
