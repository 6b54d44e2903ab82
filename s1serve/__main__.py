"""`python -m s1serve ...` is the `s1serve` command."""

import sys

from s1serve.cli import main

sys.exit(main())
