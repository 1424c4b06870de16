#!/usr/bin/env python
"""The spec's Quick Reference entry point: `python scripts/download_model.py ...` == `clinitune download ...`."""

import sys

from clinitune.cli import main

if __name__ == "__main__":
    main(["download", *sys.argv[1:]], prog_name="scripts/download_model.py")
