"""sessionkit.engine: the threaded session engine (imports no Textual, ever).

The package namespace stays light: it exports the core building blocks only. Everything
else is imported from its module (``sessionkit.engine.time_manager`` and so on).
"""

import logging

from .bar import Bar
from .session_data import SessionData
from .subscription import StreamSubscription
from .time_manager import TimeManager

__all__ = ["Bar", "SessionData", "StreamSubscription", "TimeManager"]

# A library leaves logging to its application: without a configured handler, warnings
# (such as overruns, which the snapshot also counts) are not printed over a progress bar.
logging.getLogger(__name__).addHandler(logging.NullHandler())
