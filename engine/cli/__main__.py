"""``python -m sessionkit.engine.cli``: the same as the ``sessionkit`` command (main thread)."""

from . import main

main()
