"""A data set's secret: the one key that pseudonyms, surrogates, date shifts and group keys derive from.

Who it holds against: anyone who reads the prepared files, the manifest, the run directory or this source
code. Derived from a public value (the seed), a pseudonym of a small database id could be enumerated back
to that id, a date shift recomputed from a group, and a guessed real name checked against its surrogate.
Derived with HMAC-SHA256 from 32 bytes of the OS's CSPRNG, none of that works without the key.

The key lives in a file the user keeps (`prepare --key-file`): created 0600 when absent, refused when
others can read or write it, and never inside the data set it keys. Without a key file each prepare draws
a fresh key that is never written anywhere, so a re-run cannot reproduce the same surrogates or split.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import ClinituneError

KEY_BYTES = 32


@dataclass(frozen=True)
class DataKey:
    secret: bytes = field(repr=False)
    kept: bool  # True when the key came from a file the user keeps; False when it dies with this process

    def digest(self, *parts: object) -> bytes:
        msg = "\x1f".join(str(p) for p in parts).encode()
        return hmac.new(self.secret, msg, hashlib.sha256).digest()

    def number(self, *parts: object) -> int:
        return int.from_bytes(self.digest(*parts), "big")

    def tag(self, *parts: object, length: int = 16) -> str:
        return self.digest(*parts).hex()[:length]

    @property
    def key_id(self) -> str:
        """Names the key in the manifest (which key made this data set) without revealing anything about it."""
        return self.tag("key-id", length=12)


def ephemeral() -> DataKey:
    return DataKey(secrets.token_bytes(KEY_BYTES), kept=False)


def load_or_create(path: str | Path, guarded: Path | None = None) -> DataKey:
    """The key in `path`, created (0600, from the CSPRNG) when the file does not exist yet.

    `guarded`: a directory the key must not be inside (the data set it keys).
    """
    path = Path(path).expanduser()
    if guarded is not None and path.resolve().is_relative_to(Path(guarded).resolve()):
        raise ClinituneError(
            f"--key-file {path}: the key would be written inside {guarded}, next to the data it protects; "
            "keep it elsewhere (for example ~/.config/clinitune/keys/)"
        )
    if not path.exists():
        return _create(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ClinituneError(
            f"--key-file {path}: other users can read or write it (mode {stat.filemode(mode)}); run `chmod 600 {path}`"
        )
    text = path.read_text().strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != KEY_BYTES:
        raise ClinituneError(
            f"--key-file {path}: expected {KEY_BYTES * 2} hex digits, as clinitune writes it; "
            "name a file that does not exist yet and prepare creates one"
        )
    return DataKey(secret, kept=True)


def _create(path: Path) -> DataKey:
    if not path.parent.is_dir():
        raise ClinituneError(f"--key-file {path}: the folder {path.parent} does not exist; create it first")
    secret = secrets.token_bytes(KEY_BYTES)
    # O_EXCL with mode 0600: the key is never readable by others, not even for the moment before a chmod.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return DataKey(secret, kept=True)


def keyed_group(group: str, key: DataKey) -> str:
    """A group made from a user's field (example.group_of's "g:" hash of a patient id), keyed with the data set's
    secret, so that no one holding the files can hash candidate ids to find whose examples these are. Other
    groups are already keyed (pseudonyms) or name no one (reference data, an item's own content hash)."""
    return "g:" + key.tag("group", group) if group.startswith("g:") else group


def describe(key: DataKey) -> dict:
    """What the manifest says about the key: never the key, nor anything derived from it that could be attacked."""
    if key.kept:
        return {"kept_by_user": True, "key_id": key.key_id, "reproducible": "with the same --key-file"}
    return {
        "kept_by_user": False,
        "reproducible": "no: this prepare drew a one-time key and wrote it nowhere; pass --key-file to re-run it",
    }
