import sys

from worker.cli import main

TOOLS = {"topics": "worker.tools.topics", "follow": "worker.tools.follow", "send": "worker.tools.send"}

if len(sys.argv) > 1 and sys.argv[1] in TOOLS:  # `python -m worker topics ...`: a chore, not the worker
    import importlib

    sys.exit(importlib.import_module(TOOLS[sys.argv[1]]).main(sys.argv[2:]))
sys.exit(main())
