"""`python -m aioflow ...`: the same as the `aioflow` console script."""

from aioflow.cli import main

if __name__ == "__main__":
    main()
