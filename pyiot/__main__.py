"""`python -m pyiot` runs the command line."""

import sys

from pyiot.cli import main

sys.exit(main())
