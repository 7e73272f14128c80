"""Errors domain functions raise for the edge to turn into 400/403/404 (HTML or JSON)."""

from __future__ import annotations


class NotFound(LookupError):
    """No such thing, or not visible to this user (private things answer like missing ones)."""


class Forbidden(PermissionError):
    """The thing exists and is visible, but this user may not change it."""


class Invalid(ValueError):
    """Input refused, with a message safe to show."""
