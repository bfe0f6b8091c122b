"""The package version: the single source (``pyproject.toml`` reads it from here when the package is built).

A literal rather than ``importlib.metadata``: every job script imports ``autosplit``, and reading the
installed metadata costs about 20 ms per process."""

__version__ = "0.1.0"
