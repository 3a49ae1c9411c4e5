"""`python -m xrg ...` is the `xrg` command."""

import sys

from xrg.cli import main

sys.exit(main())
