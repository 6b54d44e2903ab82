"""`python -m evals`: the same program as `s1serve eval`."""

import sys

from evals.cli import main

sys.exit(main())
