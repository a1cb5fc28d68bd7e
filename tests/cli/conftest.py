"""Shared by the command-line tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def no_screen(monkeypatch):
    """``sessionkit-tui`` (and its sweep monitor) run in-process to a refusal: one that is
    not refused would open the screen, so fail instead of waiting."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("the options were accepted: the screen would open")

    monkeypatch.setattr("sessionkit.tui.app.create_app", refuse)
    monkeypatch.setattr("sessionkit.tui.sweep_app.create_sweep_app", refuse)
