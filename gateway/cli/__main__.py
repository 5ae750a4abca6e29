"""``python -m gateway.cli``: the ``tongxing`` command."""

import sys

from gateway.cli import main

sys.exit(main())
