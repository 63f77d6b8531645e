"""`python -m rknet` (and `torchrun -m rknet`) run the command-line interface."""

import sys

from rknet.cli.main import main

sys.exit(main())
