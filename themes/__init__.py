"""sessionkit.themes."""
