"""The log's signing key and its signer state: local files, never the database.

- The key file holds one `PRIVATE+KEY+...` line (`eventstore keygen`); it is refused
  when group- or world-readable, so a key left open is noticed before it is used.
- The signer state file holds the last signed size and root. Before signing, the
  new tree is checked to extend it (a consistency proof verified against the
  remembered root), so the service never signs two inconsistent checkpoints even
  if the database is rolled back or rewritten.
- The state file is two fixed slots of `SLOT` bytes, each one JSON record (the
  state, a generation number and a SHA-256 check of both) padded with spaces. A
  write overwrites the slot of the older generation in place and `fdatasync`s it:
  one write and one sync per checkpoint (a rename plus two fsyncs cost about ten
  times the CPU). A crash mid-write spoils only that slot, whose check then fails;
  the other still holds the previous state, which every later tree extends. So a
  signature never leaves before the state that covers it is on disk, and the state
  read back is never newer than a torn write and never older than the last
  completed one. A file with one plain JSON state (hand-written, or written before
  the slots existed) is read as such and rewritten whole, atomically, on the next
  write.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import Final

import msgspec

from eventstore.notes import NoteError, Signer, shown_name_problem
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
        data = file.read_bytes()
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
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"SIGNING_KEY {path} is not a key file: not UTF-8 (at byte {exc.start})",
            setting="signing_key",
        ) from None
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) > 1:
        raise SettingsError(
            f"SIGNING_KEY {path} holds {len(lines)} lines, not one key: a key file holds one"
            " PRIVATE+KEY+... line, as eventstore keygen writes it",
            setting="signing_key",
        )
    try:
        return Signer.parse(text)
    except NoteError as exc:
        raise SettingsError(f"SIGNING_KEY {path}: {exc}", setting="signing_key") from exc


def write_key(path: str, name: str) -> Signer:
    """Generate a key named `name` into a new file at `path` (mode 0600; never overwrites).

    FileExistsError when `path` exists, IsADirectoryError when it is a directory.

    Besides what the note format refuses (`+`, spaces, newlines), the name must show as
    it is (`shown_name_problem`, the rule LOG_ORIGIN follows too).
    """
    problem = shown_name_problem(name)
    if problem is not None:
        raise NoteError(f"key name {name!r} {problem}")
    signer = Signer.generate(name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if os.path.isdir(path):  # O_EXCL says only "exists"
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path) from None
        raise
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(signer.private_key() + "\n")
    os.chmod(path, 0o600)  # whatever the umask
    return signer


SLOT: Final = 4096  # one filesystem block: a torn write stays inside one slot


class _Record(msgspec.Struct, frozen=True, kw_only=True):
    """One slot of the state file."""

    origin: str
    size: int
    root: str
    generation: int
    check: str  # hex SHA-256 of `_checked(...)`


def _checked(state: SignerState, generation: int) -> bytes:
    return msgspec.json.encode([state.origin, state.size, state.root, generation])


def _record(state: SignerState, generation: int) -> bytes:
    check = hashlib.sha256(_checked(state, generation)).hexdigest()
    data = msgspec.json.encode(
        _Record(
            origin=state.origin,
            size=state.size,
            root=state.root,
            generation=generation,
            check=check,
        )
    )
    if len(data) >= SLOT:
        raise SettingsError("the signer state does not fit its slot (an origin line that long?)")
    return data.ljust(SLOT - 1) + b"\n"


_record_decoder = msgspec.json.Decoder(_Record)
_state_decoder = msgspec.json.Decoder(SignerState)


def _slot(data: bytes) -> tuple[int, SignerState] | None:
    """(generation, state) of a slot whose check holds; None for an empty or torn slot."""
    try:
        record = _record_decoder.decode(data)
    except msgspec.DecodeError:
        return None
    state = SignerState(origin=record.origin, size=record.size, root=record.root)
    if hashlib.sha256(_checked(state, record.generation)).hexdigest() != record.check:
        return None
    return record.generation, state


def _slots(data: bytes) -> list[tuple[int, SignerState] | None] | None:
    """Both slots of a slotted file; None when `data` is not one (a plain JSON state)."""
    if len(data) != 2 * SLOT:
        return None
    return [_slot(data[:SLOT]), _slot(data[SLOT:])]


def read_state(path: str) -> SignerState | None:
    """The signer state, or None when the file does not exist yet."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    slots = _slots(data)
    if slots is None:
        try:
            return _state_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise SettingsError(f"SIGNER_STATE {path} is not a signer state: {exc}") from exc
    valid = [s for s in slots if s is not None]
    if not valid:
        raise SettingsError(f"SIGNER_STATE {path} is not a signer state: neither slot checks out")
    return max(valid, key=lambda s: s[0])[1]


def write_state(path: str, state: SignerState) -> None:
    """Record `state` durably: the older slot overwritten in place and synced.

    A missing or plain-JSON file is replaced whole, atomically (write, fsync, rename,
    directory fsync).
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        fd = -1
    if fd >= 0:
        try:
            slots = _slots(os.pread(fd, 2 * SLOT + 1, 0))
            if slots is not None and any(slots):
                generations = [s[0] if s else -1 for s in slots]
                newest = 0 if generations[0] >= generations[1] else 1
                record = _record(state, generations[newest] + 1)
                os.pwrite(fd, record, (1 - newest) * SLOT)
                _datasync(fd)
                return
        finally:
            os.close(fd)
    _replace_whole(path, _record(state, 1) + b" " * (SLOT - 1) + b"\n")


# The data and what reading it needs; macOS has no fdatasync, and fsync is a superset.
_datasync = getattr(os, "fdatasync", os.fsync)


def _replace_whole(path: str, data: bytes) -> None:
    """Replace the file atomically (write, fsync, rename, directory fsync)."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
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
