#!/usr/bin/env python
"""The spec's Quick Reference entry point: `python scripts/inference.py ...` == `clinitune infer ...`."""

import sys

from clinitune.cli import main

if __name__ == "__main__":
    main(["infer", *sys.argv[1:]], prog_name="scripts/inference.py")
