"""`python -m symdl` runs the command line."""

import sys

from symdl.cli.main import main

sys.exit(main())
