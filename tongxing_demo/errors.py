"""The demo's one error."""

from __future__ import annotations


class DemoError(Exception):
    """The demo cannot start; the message says why and what to do."""
