"""``python -m plait.cli``: the same as the ``plait`` script."""

from __future__ import annotations

import sys

from plait.cli import main

if __name__ == "__main__":
    sys.exit(main())
