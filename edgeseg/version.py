"""The package's version, on its own: the shared helpers read it without importing the package's API."""

__version__ = "0.1.0"
