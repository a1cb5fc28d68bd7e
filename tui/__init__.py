"""sessionkit.tui."""
