"""`python -m codebase_operator`: the same as `codebase-operator`."""
import sys

from .command import main

sys.exit(main())
