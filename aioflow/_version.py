"""aioflow's version, in a module of its own: any layer may name it without importing the root.

The one place the version is written: `pyproject.toml` reads it from here when the package is
built (`[tool.setuptools.dynamic]`), and `aioflow --version` prints it. A plain constant, not
`importlib.metadata`, so `import aioflow` reads no installed metadata.
"""

__version__ = "0.1.0"
