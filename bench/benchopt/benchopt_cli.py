"""``benchopt`` with a compatibility shim for ``benchmark_logreg_l2``; same arguments.

    python bench/benchopt/benchopt_cli.py run <benchmark_logreg_l2> ...

The benchmark's datasets define ``__init__`` without calling
``BaseDataset.__init__``, which benchopt 1.9+ relies on to set ``_used_seed``
(``AttributeError: 'Dataset' object has no attribute '_used_seed'`` on every
run). A class-level default ``None`` (the value that ``__init__`` would set: no
seed drawn, so the cached data are reused) restores the behaviour the datasets
were written for. Sequential runs only (the default ``-j 1``): the shim lives in
this process.
"""

import sys

from benchopt import BaseDataset
from benchopt.cli import benchopt

if not hasattr(BaseDataset, "_used_seed"):
    BaseDataset._used_seed = None

if __name__ == "__main__":
    sys.exit(benchopt())
