"""`python -m symdl` runs the command line."""

import sys

from symdl.cli import main

sys.exit(main())
