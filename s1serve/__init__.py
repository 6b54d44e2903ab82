"""The `s1serve` command: one entry point above the server, training, benchmarks and evals.

Nothing below this package imports it. `server/__init__.py` keeps its own `__version__` (the
server reports it); tests/unit/test_s1serve_cli.py keeps the two equal to pyproject.toml's.
"""

__version__ = "0.1.0"
