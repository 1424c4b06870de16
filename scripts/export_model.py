#!/usr/bin/env python
"""The spec's Quick Reference entry point: `python scripts/export_model.py ...` == `clinitune export ...`."""

import sys

from clinitune.cli import main

if __name__ == "__main__":
    main(["export", *sys.argv[1:]], prog_name="scripts/export_model.py")
