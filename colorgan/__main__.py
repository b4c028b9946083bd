"""``python -m colorgan``: the command line."""

import sys

from colorgan.cli import main

sys.exit(main())
