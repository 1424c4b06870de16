#!/usr/bin/env python
"""The spec's Quick Reference entry point: `python scripts/prepare_data.py ...` == `clinitune prepare ...`."""

import sys

from clinitune.cli import main

if __name__ == "__main__":
    main(["prepare", *sys.argv[1:]], prog_name="scripts/prepare_data.py")
