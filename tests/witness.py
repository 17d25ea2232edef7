"""A tlog-witness built from the specifications (c2sp.org/tlog-witness, tlog-cosignature).

`add_checkpoint(body)` answers as the spec says: 403 for a checkpoint not signed by
the log's key, 409 with the witness's size when `old` is not it, 422 when the
consistency proof fails, else 200 with one cosignature line.
"""

from __future__ import annotations

import base64

from eventstore.merkle import ProofFailed, verify_consistency
from eventstore.notes import (
    COSIGNATURE,
    NoteError,
    Signer,
    Verifier,
    cosign,
    open_note,
    parse_checkpoint,
)


class SpecWitness:
    """An in-memory witness of one log key."""

    def __init__(self, name: str, log_key: str, *, now: int = 1_767_225_600) -> None:
        self.signer = Signer.generate(name, kind=COSIGNATURE)
        self.log = Verifier.parse(log_key)
        self.now = now
        self.latest: dict[str, tuple[int, bytes]] = {}
        self.requests: list[bytes] = []

    @property
    def key(self) -> str:
        """The witness's verifier key (type 0x04)."""
        return self.signer.verifier_key()

    def add_checkpoint(self, body: bytes) -> tuple[int, bytes]:
        """POST /add-checkpoint."""
        self.requests.append(body)
        text = body.decode()
        head, sep, note = text.partition("\n\n")
        lines = head.split("\n")
        if not sep or not lines[0].startswith("old "):
            return 400, b"malformed request\n"
        try:
            old = int(lines[0][4:])
            proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
            origin, size, root = parse_checkpoint(open_note(note, self.log))
        except (ValueError, NoteError):
            return 403, b"checkpoint not signed by the log\n"
        known_size, known_root = self.latest.get(origin, (0, b""))
        if old != known_size:
            return 409, f"{known_size}\n".encode()
        if size < old:
            return 400, b"checkpoint smaller than old\n"
        if old > 0:
            try:
                verify_consistency(old, size, known_root, root, proof)
            except ProofFailed:
                return 422, b"consistency proof failed\n"
        elif proof:
            return 400, b"a proof from size 0\n"
        self.latest[origin] = (size, root)
        body_text = note.partition("\n\n")[0] + "\n"
        return 200, cosign(body_text, self.signer, self.now).encode()
