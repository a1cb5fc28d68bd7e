"""``python -m sessionkit.tui``: the same as the ``sessionkit-tui`` command (main thread)."""

import sys

from .cli import main

sys.exit(main())
