"""`python -m funcnn.cli`: the `funcnn` command."""

import sys

from funcnn.cli.main import main

sys.exit(main())
