"""Headless Chromium from Debian, driven by Playwright: no browser download."""

from __future__ import annotations

from pathlib import Path

from tongxing_dev import debian

COMPONENT = "chromium"
CHROMIUM = Path("/usr/bin/chromium")
# Without these, Chromium keeps dialling Google services this closed network refuses.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def obtain() -> Path:
    """Install Debian's chromium (and CJK fonts for the zh-CN pages) when missing."""
    debian.ensure(COMPONENT, ["chromium", "fonts-noto-cjk"], CHROMIUM)
    return CHROMIUM
