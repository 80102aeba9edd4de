"""``python -m odebench.cli``: the same as the ``odebench`` command."""

import sys

from . import main

sys.exit(main())
