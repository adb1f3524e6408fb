"""uhaha for Python: highly available, Raft-replicated data applications."""

__version__ = "0.1.0"
