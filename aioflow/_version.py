"""aioflow's version, in a module of its own: any layer may name it without importing the root."""

__version__ = "0.1.0"
