"""Where clinitune keeps its caches, and atomic writes shared by every module."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import ClinituneError


def cache_dir() -> Path:
    """`$CLINITUNE_CACHE`, else `~/.cache/clinitune`."""
    root = os.environ.get("CLINITUNE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "clinitune")
    return Path(root)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (weights and datasets can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def exclusive(lock_file: Path, doing: str):
    """A lock file held, with this process's pid in it, for as long as the block runs. The kernel's lock on the
    open file decides who holds it, so two processes can never both hold it (no window between creating the file
    and writing the pid), and a holder that dies (killed) releases it with its last file descriptor."""
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ClinituneError(
                f"{lock_file.parent}: another clinitune process (pid {pid}) is {doing}; wait for it to finish, or "
                "write somewhere else"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_file).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder before us removed the file as we opened it: lock the file that is there now
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    try:
        yield
    finally:
        lock_file.unlink(missing_ok=True)
        os.close(fd)


def require_dir(path: Path, what: str) -> Path:
    """`path` unless something other than a directory is already there: then one line naming the option."""
    if path.exists() and not path.is_dir():
        raise ClinituneError(f"{what} {path}: is a file; give a directory")
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write to a temp file in the same directory, then rename, so readers never see a half file."""
    path = Path(path)
    if path.is_dir():
        raise ClinituneError(f"{path}: is a directory; give a file path to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike):
    """Yield a temp dir beside `final`; on success it replaces `final` in one rename."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
