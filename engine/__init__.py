"""sessionkit.engine: the threaded session engine (imports no Textual, ever).

The package namespace stays light: it exports the core building blocks only. Everything
else is imported from its module (``sessionkit.engine.time_manager`` and so on).
"""

from .bar import Bar
from .session_data import SessionData
from .subscription import StreamSubscription
from .time_manager import TimeManager

__all__ = ["Bar", "SessionData", "StreamSubscription", "TimeManager"]
