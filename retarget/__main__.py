"""Allow ``python -m retarget``."""

from retarget.cli import main

if __name__ == "__main__":
    main()
