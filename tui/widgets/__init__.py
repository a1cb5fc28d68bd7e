"""The panes of the sessionkit monitor, one widget per module (event loop only)."""
