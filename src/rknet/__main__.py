"""`python -m rknet` (and `torchrun -m rknet`) run the command-line interface."""

import sys

from .cli import main

sys.exit(main())
