"""The database and what goes in and out of it.

Schema and connections (:mod:`.db`), bulk reads (:mod:`.data_manager`), the calendar fill
(:mod:`.calendar_fill`), one importer module per file format (:mod:`.import_csv`) and the
CSV export (:mod:`.export`). Called from whichever thread needs it; nothing here starts a
thread. Imports nothing of the engine but ``core.bar``, ``config`` and ``errors``.
"""
