#!/usr/bin/env python
"""The seed's Quick Reference entry point: `python scripts/inference.py ...` == `clinitune infer ...`."""

import sys

from clinitune.cli import app

if __name__ == "__main__":
    app(args=["infer", *sys.argv[1:]], prog_name="scripts/inference.py")
