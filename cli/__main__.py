"""`python -m cli`: the `uncia` command."""

import sys

from cli.main import main

sys.exit(main())
