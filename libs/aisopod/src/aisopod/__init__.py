"""aisopod gateway shared library.

Pure protocol logic (errors, frames, catalogue, scopes, subjects, principal) imports no
I/O library; the I/O helpers (bus, stores, service lifecycle, launcher) live beside it.
"""

__version__ = "0.1.0"
