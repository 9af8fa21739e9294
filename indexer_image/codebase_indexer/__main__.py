import sys

from .indexer_main import main

sys.exit(main())
