import sys

from schemas.cli import main

sys.exit(main())
