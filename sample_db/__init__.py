"""sessionkit.sample_db."""
