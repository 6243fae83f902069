"""The `python -m training` command line as the tests run it: its help text, and which options it lists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def help_text(*args: str) -> str:
    """`python -m training ARGS --help`, which must succeed."""
    done = subprocess.run([sys.executable, "-m", "training", *args, "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def has_flag(text: str, field: str) -> bool:
    """Whether a help text lists the option of settings field `field` (--data, not only --data-dir; a
    one-letter field is a short option, -k)."""
    flag = ("-" if len(field) == 1 else "--") + field.replace("_", "-")
    return re.search(r"(?<![\w-])" + re.escape(flag) + r"(?![\w-])", text) is not None
