"""The database and what goes in and out of it.

Schema and connections (:mod:`.db`), bulk reads (:mod:`.data_manager`, and the reader
process of :mod:`.column_reader` that reads sessions ahead as columns), the calendar fill
(:mod:`.calendar_fill`), the importers: what they share (:mod:`.importing`: the row rules,
the report, the writer) and one reader module per file format (:mod:`.import_csv` with the
``csv`` module, :mod:`.import_arrow` with pyarrow for CSV and Parquet, :mod:`.import_dbn`
for Databento DBN), and the CSV export (:mod:`.export`). Called from whichever thread
needs it; the only thread started here is an import's ``import_reader``, which lives for
one import, and the only process a running session's reader process. Imports nothing of
the engine but ``core.bar``, ``config`` and ``errors``.
"""
