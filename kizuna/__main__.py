"""``python -m kizuna``: the same as the ``kizuna`` command."""

import sys

from kizuna.cli import main

sys.exit(main())
