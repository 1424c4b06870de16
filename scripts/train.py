#!/usr/bin/env python
"""The seed's Quick Reference entry point: `python scripts/train.py ...` == `clinitune train ...`."""

import sys

from clinitune.cli import app

if __name__ == "__main__":
    app(args=["train", *sys.argv[1:]], prog_name="scripts/train.py")
