"""The session pipeline: the engine's threads and their wiring.

``session_coordinator`` (:mod:`.coordinator`, :mod:`.live`), ``data_processor``
(:mod:`.processor`, with :mod:`.indicators`), ``data_quality_manager`` (:mod:`.quality`) and
``analysis_engine`` (:mod:`.analysis`) share one :class:`~.runtime.Runtime`; :mod:`.session`
is the facade that builds and controls them and :mod:`.snapshot` the immutable view the UI
reads. Imports ``core``, ``feeds`` and ``store``; nothing below imports it.
"""
