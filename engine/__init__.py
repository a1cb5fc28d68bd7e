"""sessionkit.engine."""
