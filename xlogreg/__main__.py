"""``python -m xlogreg``: the ``xlogreg`` command line."""

import sys

from .cli import main

sys.exit(main())
