import sys

from demo.stream import main

sys.exit(main())
