"""Screens of the sessionkit monitor (event loop only)."""
