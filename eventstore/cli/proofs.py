"""The verifiable log's commands: keygen, proof, verify-proof.

`verify-proof` needs no database and no service: exit 0 when the proof holds,
2 when any of its content fails (altered, unparsable, another key, unsigned, another
log's origin than `--origin`), 1 only when the file cannot be read or the key is malformed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TextIO

import msgspec

from eventstore.cli.bootstrap import open_service
from eventstore.cli.common import (
    EXIT_OK,
    EXIT_TAMPERED,
    CliError,
    NothingThere,
    printable,
    settings_from,
)
from eventstore.merkle import ProofError
from eventstore.notes import NoteError, Verifier
from eventstore.proofs import NoCheckpoint, UnknownEvent, event_proof, verify_proof_file
from eventstore.signing import write_key


def _read(path: str) -> bytes:
    return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()


async def cmd_keygen(args: argparse.Namespace, out: TextIO) -> int:
    """Write a new signing key (mode 0600, never overwriting); print its verifier key.

    The private key goes to the file alone: `--out -` is refused, not read as standard
    output, where the key would mix with the verifier key and land in logs or scrollback.
    """
    if args.out == "-":
        raise CliError(
            "--out - would print the private key: give the path of the key file to create"
            " (keygen prints only the verifier key)"
        )
    try:
        signer = write_key(args.out, args.name)
    except NoteError as exc:
        raise CliError(str(exc)) from None
    except IsADirectoryError:
        raise CliError(
            f"{args.out} is a directory: give the path of the key file to create in it"
        ) from None
    except FileExistsError:
        raise CliError(f"{args.out} exists: refusing to overwrite a key") from None
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror}") from None
    print(signer.verifier_key(), file=out)
    return EXIT_OK


async def cmd_proof(args: argparse.Namespace, out: TextIO) -> int:
    """Print (or write) the eventstore-proof/v1 file of one event."""
    settings = settings_from(args)
    async with open_service(settings, store=args.store) as service:
        try:
            found = await event_proof(service.store, args.seq, args.size)
        except (NoCheckpoint, UnknownEvent) as exc:
            raise NothingThere(str(exc)) from None
        except ProofError as exc:
            raise CliError(str(exc)) from None
    data = msgspec.json.encode(found)
    if args.out:
        try:
            await asyncio.to_thread(Path(args.out).write_bytes, data + b"\n")
        except OSError as exc:
            raise CliError(f"cannot write {args.out}: {exc.strerror}") from None
    else:
        print(data.decode(), file=out)
    return EXIT_OK


async def cmd_verify_proof(args: argparse.Namespace, out: TextIO) -> int:
    """Check a proof file offline against a verifier key."""
    try:
        verifier = Verifier.parse(args.key)
    except NoteError as exc:
        raise CliError(f"--key: {exc}") from None
    try:
        data = await asyncio.to_thread(_read, args.file)
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    verdict = verify_proof_file(data, verifier, origin=args.origin)
    if args.json:
        body = {"valid": verdict.valid, "reason": verdict.reason, "seq": verdict.seq}
        body |= {"tree_size": verdict.tree_size, "origin": verdict.origin}
        print(json.dumps(body), file=out)
    else:
        print(("valid: " if verdict.valid else "INVALID: ") + printable(verdict.reason), file=out)
    return EXIT_OK if verdict.valid else EXIT_TAMPERED
