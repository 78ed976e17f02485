"""Entry point of the frozen app: the same ``main`` as the ``q8studio`` console script."""

import sys

from q8studio.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
