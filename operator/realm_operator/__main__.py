"""``python -m realm_operator`` (and ``tongxing operator``): run the operator."""

from __future__ import annotations

import sys

from realm_operator.run import run

if __name__ == "__main__":
    sys.exit(run())
