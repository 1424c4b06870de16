#!/usr/bin/env python
"""The spec's Quick Reference entry point: `python scripts/train.py ...` == `clinitune train ...`."""

import sys

from clinitune.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]], prog_name="scripts/train.py")
