"""`python -m benchmarks`: the side-by-side comparison (see `benchmarks/runner.py`)."""

from .runner import main

raise SystemExit(main())
