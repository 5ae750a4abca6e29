"""Tongxing's gateway: the OpenID Provider portals delegate login to, and the broker to regions."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tongxing")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
