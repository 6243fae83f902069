import sys

from demo.roundtrip import main

sys.exit(main())
