"""The log's signing key and its signer state: local files, never the database.

- The key file holds one `PRIVATE+KEY+...` line (`eventstore keygen`); it is refused
  when group- or world-readable, so a key left open is noticed before it is used.
- The signer state file holds the last signed size and root. Before signing, the
  new tree is checked to extend it (a consistency proof verified against the
  remembered root), so the service never signs two inconsistent checkpoints even
  if the database is rolled back or rewritten. It is replaced atomically.
"""

from __future__ import annotations

import base64
import contextlib
import os
import stat
from pathlib import Path

import msgspec

from eventstore.notes import NoteError, Signer, check_name
from eventstore.settings import SettingsError


class SignerState(msgspec.Struct, frozen=True, kw_only=True):
    """The last checkpoint this signer signed."""

    origin: str
    size: int
    root: str  # base64


def load_signer(path: str) -> Signer:
    """The signer of the key file at `path`; SettingsError when unreadable, open or malformed."""
    file = Path(path)
    try:
        mode = file.stat().st_mode
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(
            f"SIGNING_KEY cannot be read: {path} ({exc.strerror})", setting="signing_key"
        ) from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SettingsError(
            f"SIGNING_KEY {path} is readable by group or others (mode {stat.S_IMODE(mode):04o});"
            " chmod 600 it",
            setting="signing_key",
        )
    try:
        return Signer.parse(text)
    except NoteError as exc:
        raise SettingsError(f"SIGNING_KEY {path}: {exc}", setting="signing_key") from exc


def write_key(path: str, name: str) -> Signer:
    """Generate a key named `name` into a new file at `path` (mode 0600; never overwrites)."""
    check_name(name)
    signer = Signer.generate(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(signer.private_key() + "\n")
    os.chmod(path, 0o600)  # whatever the umask
    return signer


def read_state(path: str) -> SignerState | None:
    """The signer state, or None when the file does not exist yet."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    try:
        return msgspec.json.decode(data, type=SignerState)
    except msgspec.DecodeError as exc:
        raise SettingsError(f"SIGNER_STATE {path} is not a signer state: {exc}") from exc


def write_state(path: str, state: SignerState) -> None:
    """Replace the signer state atomically (write, fsync, rename)."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(msgspec.json.encode(state))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def root_b64(root: bytes) -> str:
    """Standard padded base64 of a hash."""
    return base64.b64encode(root).decode()
