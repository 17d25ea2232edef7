"""C2SP checkpoints, signed notes, cosignatures and keys, as Go's `sumdb/note` writes them.

- Checkpoint text (c2sp.org/tlog-checkpoint): `<origin>\\n<size>\\n<base64 root>\\n`.
- Signed note (c2sp.org/signed-note): the text, an empty line, then one line per
  signature `— <name> <base64(4-byte key id || signature)>`; the signed bytes are
  the text including its final newline. Signatures by unknown keys are ignored.
- Ed25519 keys (type 0x01): key id = SHA-256(name || 0x0A || 0x01 || public key)[:4];
  verifier `<name>+<8 hex>+<base64(0x01 || public key)>`, signer
  `PRIVATE+KEY+<name>+<8 hex>+<base64(0x01 || seed)>`.
- Cosignatures (c2sp.org/tlog-cosignature, type 0x04): key id over 0x04 instead;
  the signature is key id || 8-byte big-endian time || Ed25519 over
  `cosignature/v1\\ntime <t>\\n` + the checkpoint text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from eventstore.decimal_text import canonical_int

ED25519 = 0x01
COSIGNATURE = 0x04
DASH = "\u2014 "
# A checkpoint's tree size: decimal without leading zeros (C2SP tlog-checkpoint), a uint64.
MAX_SIZE = 2**64 - 1
# What a key name (and a log origin) must be, as errors say it.
NAME_RULE: Final = "must be non-empty, without '+', spaces, tabs or newlines"
SHOWN_RULE: Final = (
    "must be printable text: no control, format or bidirectional characters,"
    " no bytes that are not UTF-8"
)


class NoteError(ValueError):
    """A key, checkpoint or note that is malformed, or a signature that does not verify."""


def check_name(name: str) -> str:
    """A key name as Go's note package accepts it: non-empty, no `+`, no whitespace."""
    if _note_name_problem(name) is not None:
        raise NoteError(f"key name {name!r} {NAME_RULE}")
    return name


def _note_name_problem(name: str) -> str | None:
    if not name or "+" in name or any(c.isspace() for c in name):
        return NAME_RULE
    return None


def shown_name_problem(name: str) -> str | None:
    """What keeps `name` from being a key name or log origin that shows as it is; None if nothing.

    Besides what the note format refuses (empty, `+`, any Unicode space or newline),
    the name must show as it is: no control characters (an escape sequence would act
    on the terminal of whoever prints it; Go's note package refuses a note holding
    one), no marks or overrides that reorder text (U+202E), no other invisible
    formatting, and no bytes that are not UTF-8 (lone surrogates). C2SP tlog-checkpoint
    asks the same of an origin: no Unicode spaces, no `+`.
    """
    problem = _note_name_problem(name)
    if problem is None and not name.isprintable():
        return SHOWN_RULE
    return problem


def key_id(name: str, kind: int, public: bytes) -> bytes:
    """The 4-byte key id: SHA-256(name || 0x0A || kind || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + public).digest()[:4]


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"{what} is not valid base64") from exc


class Signer:
    """An Ed25519 signing key with its name (type 0x01 notes or 0x04 cosignatures)."""

    def __init__(self, name: str, seed: bytes, kind: int = ED25519) -> None:
        self.name = check_name(name)
        self.kind = kind
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = _raw(self._key.public_key())
        self.id = key_id(name, kind, self.public)

    @classmethod
    def generate(cls, name: str, kind: int = ED25519) -> Signer:
        """A fresh random key."""
        seed = Ed25519PrivateKey.generate().private_bytes_raw()
        return cls(name, seed, kind)

    @classmethod
    def parse(cls, text: str) -> Signer:
        """A signer key `PRIVATE+KEY+<name>+<hex id>+<base64(type || seed)>`."""
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError("a signer key reads PRIVATE+KEY+<name>+<key id>+<key>")
        name, hex_id, blob = parts[2], parts[3], _b64decode(parts[4], "the signer key")
        if len(blob) != 33 or blob[0] not in (ED25519, COSIGNATURE):
            raise NoteError("the signer key is not an Ed25519 key")
        signer = cls(name, blob[1:], blob[0])
        if signer.id.hex() != hex_id.lower() or len(hex_id) != 8:
            raise NoteError("the signer key's id does not match its name and key")
        return signer

    def private_key(self) -> str:
        """The signer key string (keep it secret)."""
        seed = self._key.private_bytes_raw()
        encoded = base64.b64encode(bytes([self.kind]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.id.hex()}+{encoded}"

    def verifier_key(self) -> str:
        """The verifier key string (public)."""
        encoded = base64.b64encode(bytes([self.kind]) + self.public).decode()
        return f"{self.name}+{self.id.hex()}+{encoded}"

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of `message`."""
        return self._key.sign(message)


class Verifier:
    """An Ed25519 verifier key (type 0x01 or 0x04)."""

    def __init__(self, name: str, public: bytes, kind: int = ED25519) -> None:
        self.name = check_name(name)
        self.kind = kind
        self.public = public
        self.id = key_id(name, kind, public)
        try:
            self._key = Ed25519PublicKey.from_public_bytes(public)
        except ValueError as exc:
            raise NoteError("the verifier key is not an Ed25519 public key") from exc

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """A verifier key `<name>+<hex id>+<base64(type || public key)>`."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3 or len(parts[1]) != 8:
            raise NoteError("a verifier key reads <name>+<8 hex key id>+<base64 key>")
        name, hex_id, blob = parts[0], parts[1], _b64decode(parts[2], "the verifier key")
        if len(blob) != 33 or blob[0] not in (ED25519, COSIGNATURE):
            raise NoteError("the verifier key is not an Ed25519 key")
        verifier = cls(name, blob[1:], blob[0])
        if verifier.id.hex() != hex_id.lower():
            raise NoteError("the verifier key's id does not match its name and key")
        return verifier

    def key(self) -> str:
        """The verifier key string."""
        encoded = base64.b64encode(bytes([self.kind]) + self.public).decode()
        return f"{self.name}+{self.id.hex()}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when `signature` is this key's over `message`."""
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


# -- checkpoints ----------------------------------------------------------------------------


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    """The C2SP checkpoint body."""
    if not origin or "\n" in origin:
        raise NoteError("the origin is one non-empty line")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    """(origin, size, root) of a checkpoint body; extension lines are allowed and ignored."""
    if not text.endswith("\n"):
        raise NoteError("a checkpoint ends with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not lines[0] or any(not line for line in lines):
        raise NoteError("a checkpoint has an origin, a size and a root line")
    size = canonical_int(lines[1])
    if size is None or not 0 <= size <= MAX_SIZE:
        raise NoteError("the checkpoint's size is not a decimal number")
    root = _b64decode(lines[2], "the checkpoint's root")
    if len(root) != 32:
        raise NoteError("the checkpoint's root is not 32 bytes")
    return lines[0], size, root


# -- signed notes ---------------------------------------------------------------------------


def signature_line(name: str, kid: bytes, signature: bytes) -> str:
    """One signature line (with its newline)."""
    return f"{DASH}{name} {base64.b64encode(kid + signature).decode()}\n"


def sign_note(text: str, signer: Signer) -> str:
    """The signed note of `text` (which ends with a newline)."""
    if not text.endswith("\n"):
        raise NoteError("a note's text ends with a newline")
    return text + "\n" + signature_line(signer.name, signer.id, signer.sign(text.encode()))


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """(text, [(key name, base64-decoded signature blob)]) of a signed note; no checking."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("a signed note is its text, an empty line, then signature lines")
    text, block = note[: cut + 1], note[cut + 2 :]
    sigs: list[tuple[str, bytes]] = []
    for line in block[:-1].split("\n"):
        if not line.startswith(DASH):
            raise NoteError("a signature line starts with an em dash and a space")
        name, _, encoded = line[len(DASH) :].partition(" ")
        blob = _b64decode(encoded, "a signature")
        if not name or " " in encoded or len(blob) < 5:
            raise NoteError("a signature line reads — <name> <base64 signature>")
        sigs.append((name, blob))
    return text, sigs


def _malformed(note: str) -> str | None:
    """What makes `note` no signed note before its lines are read, as Go's `note.Open` sees it."""
    if not note.strip():
        return "it is empty" if not note else "it holds only white space"
    if "\r\n" in note:
        return (
            "its line endings were changed to CRLF (\\r\\n): a note's lines end with \\n"
            " alone, and its signature covers the bytes as they were signed"
        )
    bad = next((c for c in note if c < " " and c != "\n"), None)
    if bad is not None:
        return f"it holds the control character {bad!r} (a note holds none but newlines)"
    return None


def open_note(note: str, verifier: Verifier) -> str:
    """The text of a note carrying a valid signature by `verifier`; NoteError otherwise.

    The error says what is true: not a checkpoint or signed note at all (garbage, an
    empty file, changed line endings, a control character), a checkpoint without a
    signature, or a signed note without a valid signature by this key.
    """
    problem = _malformed(note)
    if problem is not None:
        raise NoteError(f"not a signed note: {problem}")
    if note.rfind("\n\n") < 0:
        try:
            parse_checkpoint(note)
        except NoteError as exc:
            raise NoteError(f"not a checkpoint or a signed note: {exc}") from None
        raise NoteError(
            "the checkpoint is unsigned (the log has no SIGNING_KEY): nothing vouches for it"
        )
    try:
        text, sigs = split_note(note)
    except NoteError as exc:
        raise NoteError(f"not a signed note: {exc}") from None
    mine = [b for n, b in sigs if n == verifier.name and b[:4] == verifier.id]
    if not mine:
        raise NoteError(f"the note carries no signature by {verifier.name}+{verifier.id.hex()}")
    if not any(verifier.verify(text.encode(), b[4:]) for b in mine):
        raise NoteError(f"the signature by {verifier.name} does not verify")
    return text


# -- cosignatures ---------------------------------------------------------------------------


def _cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


def cosign(text: str, witness: Signer, timestamp: int) -> str:
    """A witness's cosignature line over a checkpoint text (type 0x04)."""
    signature = witness.sign(_cosigned_message(text, timestamp))
    blob = struct.pack(">Q", timestamp) + signature
    return signature_line(witness.name, witness.id, blob)


def verify_cosignature(text: str, line: str, witness: Verifier) -> int:
    """The cosignature's timestamp when `line` is `witness`'s valid cosignature of `text`."""
    _, sigs = split_note("x\n\n" + line.rstrip("\n") + "\n")
    [(name, blob)] = sigs
    if name != witness.name or blob[:4] != witness.id or len(blob) != 4 + 8 + 64:
        raise NoteError(f"not a cosignature by {witness.name}+{witness.id.hex()}")
    (timestamp,) = struct.unpack(">Q", blob[4:12])
    if not witness.verify(_cosigned_message(text, timestamp), blob[12:]):
        raise NoteError(f"the cosignature by {witness.name} does not verify")
    return int(timestamp)
