"""What the user sees: clinitune's own lines on the terminal, other libraries' chatter in a log file.

Third-party libraries warn about things a user can't act on (DeepSpeed finding no GPU on a CPU box, a
transformers FutureWarning about an argument we don't pass, llama.cpp's per-tensor quantization lines).
Those go to the log file of the job when one is open, and only their errors reach the terminal. Logs carry
counts and types only; record contents never go through logging.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

OWN = "clinitune"
FORMAT = "%(levelname)s %(name)s: %(message)s"


class OwnLines(logging.Filter):
    """Terminal: clinitune's records at the chosen level, everyone else's at ERROR and above."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith(OWN) or record.name == "__main__" or record.levelno >= logging.ERROR


class ErrorsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def setup(quiet: bool) -> None:
    # Before transformers and huggingface_hub read them: their advisory lines and weight-loading bars are not ours.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setFormatter(logging.Formatter(FORMAT))
    terminal.addFilter(OwnLines())
    root = logging.getLogger()
    for h in list(root.handlers):
        if not isinstance(h, logging.FileHandler):
            root.removeHandler(h)
    root.addHandler(terminal)
    root.setLevel(logging.INFO)
    logging.getLogger(OWN).setLevel(logging.WARNING if quiet else logging.INFO)
    logging.captureWarnings(True)  # FutureWarning and friends become records: file yes, terminal no
    # DeepSpeed's logger prints to stdout on its own handler, set when it is imported; a filter on the logger
    # object survives that and keeps its "no accelerator found" notice off a CPU user's screen.
    ds = logging.getLogger("DeepSpeed")
    if not any(isinstance(f, ErrorsOnly) for f in ds.filters):  # setup runs once per command, filters once
        ds.addFilter(ErrorsOnly())


def to_file(path: Path) -> logging.Handler:
    """Every record, ours and third parties', appended to `path` (the job's log)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s " + FORMAT))
    logging.getLogger().addHandler(handler)
    return handler


@contextlib.contextmanager
def native_output_to(path: Path) -> Iterator[None]:
    """Output a C library writes straight to file descriptors 1 and 2 (llama.cpp) goes to `path` instead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "ab") as log:
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
