"""Signed notes, checkpoints, keys and cosignatures, against Go's published `sumdb/note` examples."""

from __future__ import annotations

import base64

import pytest

from eventstore.notes import (
    COSIGNATURE,
    NoteError,
    Signer,
    Verifier,
    checkpoint_text,
    cosign,
    open_note,
    parse_checkpoint,
    sign_note,
    split_note,
    verify_cosignature,
)

# From golang.org/x/mod/sumdb/note/example_test.go (ExampleSign, ExampleOpen).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
# From SINKS_AND_PROOFS.md (published in the C2SP signed-note specification).
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"


def test_go_signer_key_signs_exactly_as_go_does() -> None:
    signer = Signer.parse(GO_SKEY)
    assert signer.private_key() == GO_SKEY
    assert signer.verifier_key() == GO_VKEY
    assert sign_note(GO_TEXT, signer) == GO_NOTE


def test_go_signed_note_opens_with_go_verifier_key() -> None:
    assert open_note(GO_NOTE, Verifier.parse(GO_VKEY)) == GO_TEXT
    assert Verifier.parse(C2SP_VKEY).key() == C2SP_VKEY


def test_an_altered_text_or_another_key_is_refused() -> None:
    with pytest.raises(NoteError, match="does not verify"):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), Verifier.parse(GO_VKEY))
    other = Signer.generate("PeterNeumann")
    with pytest.raises(NoteError, match="no signature"):
        open_note(GO_NOTE, Verifier.parse(other.verifier_key()))
    # Unknown signatures are ignored: the known one still opens the note.
    both = GO_NOTE + sign_note(GO_TEXT, other).split("\n\n")[1]
    assert open_note(both, Verifier.parse(GO_VKEY)) == GO_TEXT


@pytest.mark.parametrize(
    "key",
    [
        "",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+AhpcZQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_verifier_keys_are_refused(key: str) -> None:
    with pytest.raises(NoteError):
        Verifier.parse(key)


@pytest.mark.parametrize("name", ["", "a+b", "a b", "a\nb", "tab\there"])
def test_key_names_with_plus_spaces_or_newlines_are_refused(name: str) -> None:
    with pytest.raises(NoteError, match="key name"):
        Signer.generate(name)


def test_generated_keys_round_trip_through_their_strings() -> None:
    signer = Signer.generate("log.example/a")
    again = Signer.parse(signer.private_key())
    assert again.verifier_key() == signer.verifier_key()
    assert signer.private_key().startswith("PRIVATE+KEY+log.example/a+")
    blob = base64.b64decode(signer.verifier_key().split("+", 2)[2])
    assert blob[0] == 0x01 and len(blob) == 33


def test_checkpoint_text_round_trips_and_malformed_ones_are_refused() -> None:
    root = bytes(range(32))
    text = checkpoint_text("eventstore/shop", 42, root)
    assert text == f"eventstore/shop\n42\n{base64.b64encode(root).decode()}\n"
    assert parse_checkpoint(text) == ("eventstore/shop", 42, root)
    assert parse_checkpoint(text + "ext\n") == ("eventstore/shop", 42, root)
    for bad in (
        text[:-1],
        "o\n042\nAAAA\n",
        "o\n-1\n" + text.split("\n")[2] + "\n",
        "o\n1\nAAAA\n",
    ):
        with pytest.raises(NoteError):
            parse_checkpoint(bad)


def test_cosignatures_verify_and_bind_time_text_and_key() -> None:
    witness = Signer.generate("witness.example", kind=COSIGNATURE)
    verifier = Verifier.parse(witness.verifier_key())
    text = checkpoint_text("eventstore/shop", 7, bytes(32))
    line = cosign(text, witness, 1_767_225_600)
    assert verify_cosignature(text, line, verifier) == 1_767_225_600
    with pytest.raises(NoteError):
        verify_cosignature(text.replace("7", "8"), line, verifier)
    # A type 0x01 key of the same name and public key has another key id.
    as_note_key = Verifier(witness.name, witness.public)
    assert as_note_key.id != verifier.id
    with pytest.raises(NoteError):
        verify_cosignature(text, line, as_note_key)


def test_a_cosignatures_time_is_an_unsigned_64_bit_number_and_its_line_is_exact() -> None:
    witness = Signer.generate("witness.example", kind=COSIGNATURE)
    verifier = Verifier.parse(witness.verifier_key())
    text = checkpoint_text("eventstore/shop", 7, bytes(32))
    for timestamp in (0, 2**63, 2**64 - 1):  # c2sp.org/tlog-cosignature: a uint64
        assert verify_cosignature(text, cosign(text, witness, timestamp), verifier) == timestamp
    line = cosign(text, witness, 1_767_225_600)
    assert verify_cosignature(text, line.rstrip("\n"), verifier) == 1_767_225_600
    for bad in (line.rstrip("\n") + " \n", line.rstrip("\n") + "X\n"):
        with pytest.raises(NoteError):
            verify_cosignature(text, bad, verifier)
    other = Signer.generate("other.example", kind=COSIGNATURE)
    with pytest.raises(NoteError, match=r"^not a cosignature by witness\.example\+[0-9a-f]{8}$"):
        verify_cosignature(text, cosign(text, other, 1), verifier)
    with pytest.raises(NoteError, match=r"^the cosignature by witness\.example does not verify$"):
        verify_cosignature(text + "extra\n", line, verifier)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


READS_SIGNER = "a signer key reads PRIVATE+KEY+<name>+<key id>+<key>"
READS_VERIFIER = "a verifier key reads <name>+<8 hex key id>+<base64 key>"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("PRIVATE+KEY+PeterNeumann+c74f20a3", READS_SIGNER),
        (GO_SKEY.replace("PRIVATE+KEY", "PRIVATE+KEX"), READS_SIGNER),
        (GO_SKEY.replace("PRIVATE+KEY", "PRIVATX+KEY"), READS_SIGNER),
        ("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEK!", "the signer key is not valid base64"),
        (
            "PRIVATE+KEY+PeterNeumann+c74f20a3+" + _b64(b"\x01" + bytes(31)),
            "the signer key is not an Ed25519 key",
        ),
        (
            "PRIVATE+KEY+PeterNeumann+c74f20a3+" + _b64(b"\x02" + bytes(32)),
            "the signer key is not an Ed25519 key",
        ),
        (
            GO_SKEY.replace("c74f20a3", "c74f20a4"),
            "the signer key's id does not match its name and key",
        ),
        (
            GO_SKEY.replace("c74f20a3", "c74f20a30"),
            "the signer key's id does not match its name and key",
        ),
    ],
)
def test_a_malformed_signer_key_is_refused_saying_why(key: str, message: str) -> None:
    with pytest.raises(NoteError) as refused:
        Signer.parse(key)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("PeterNeumann+c74f20a3", READS_VERIFIER),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", READS_VERIFIER),
        ("PeterNeumann+c74f20a3+ARpc!", "the verifier key is not valid base64"),
        (
            "PeterNeumann+c74f20a3+" + _b64(b"\x01" + bytes(31)),
            "the verifier key is not an Ed25519 key",
        ),
        (
            "PeterNeumann+c74f20a3+" + _b64(b"\x02" + bytes(32)),
            "the verifier key is not an Ed25519 key",
        ),
        (
            GO_VKEY.replace("c74f20a3", "c74f20a4"),
            "the verifier key's id does not match its name and key",
        ),
    ],
)
def test_a_malformed_verifier_key_is_refused_saying_why(key: str, message: str) -> None:
    with pytest.raises(NoteError) as refused:
        Verifier.parse(key)
    assert str(refused.value) == message


def test_keys_parse_with_an_upper_case_id_and_keep_their_type() -> None:
    assert Signer.parse(GO_SKEY.replace("c74f20a3", "C74F20A3")).verifier_key() == GO_VKEY
    assert Verifier.parse(GO_VKEY.replace("c74f20a3", "C74F20A3")).key() == GO_VKEY
    witness = Signer.generate("witness.example", kind=COSIGNATURE)
    parsed = Signer.parse(witness.private_key())
    assert (parsed.kind, parsed.id, parsed.private_key()) == (
        COSIGNATURE,
        witness.id,
        witness.private_key(),
    )
    verifier = Verifier.parse(witness.verifier_key())
    assert (verifier.kind, verifier.id, verifier.key()) == (
        COSIGNATURE,
        witness.id,
        witness.verifier_key(),
    )


def test_an_unsigned_or_malformed_note_is_refused_saying_which() -> None:
    verifier = Verifier.parse(GO_VKEY)
    with pytest.raises(NoteError) as refused:
        open_note(checkpoint_text("example.com/log", 3, bytes(32)), verifier)
    assert str(refused.value) == (
        "the checkpoint is unsigned (the log has no SIGNING_KEY): nothing vouches for it"
    )
    # text with no signature block that is no checkpoint either is not called unsigned
    with pytest.raises(NoteError) as refused:
        open_note(GO_TEXT, verifier)
    assert str(refused.value) == (
        "not a checkpoint or a signed note: a checkpoint has an origin, a size and a root line"
    )
    # an empty line at the very start opens a (malformed) signature block, not "unsigned"
    with pytest.raises(NoteError) as refused:
        open_note("\n\n\u2014 x abc\n", verifier)
    assert str(refused.value) == "not a signed note: a signature is not valid base64"
    with pytest.raises(NoteError) as refused:
        Verifier("short", bytes(31))
    assert str(refused.value) == "the verifier key is not an Ed25519 public key"


def test_a_note_splits_at_its_last_empty_line_and_each_signature_line_is_exact() -> None:
    signer = Signer.generate("log.test")
    text = "origin\n\nan extension after an empty line\n"
    assert open_note(sign_note(text, signer), Verifier.parse(signer.verifier_key())) == text
    for bad, message in (
        ("x\n\n\u2014 a b AAAAAAAA\n", "a signature is not valid base64"),  # no space in a name
        ("x\n\n- log.test AAAAAAAA\n", "a signature line starts with an em dash and a space"),
        (
            "x\n\u2014 log.test AAAAAAAA\n",
            "a signed note is its text, an empty line, then signature lines",
        ),
        (
            "x\n\n\u2014 log.test AAAAAAAA",
            "a signed note is its text, an empty line, then signature lines",
        ),
    ):
        with pytest.raises(NoteError) as refused:
            split_note(bad)
        assert str(refused.value) == message, bad


def test_a_signature_line_needs_a_name_and_at_least_a_key_id_and_one_byte() -> None:
    reads = "a signature line reads \u2014 <name> <base64 signature>"
    for line in ("\u2014 log.test AAAAAA==", "\u2014  AAAAAAA="):  # 4 bytes; no name
        with pytest.raises(NoteError) as refused:
            split_note("x\n\n" + line + "\n")
        assert str(refused.value) == reads, line
    assert split_note("x\n\n\u2014 log.test AAAAAAA=\n") == ("x\n", [("log.test", bytes(5))])


ROOT64 = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"o\n1\n{ROOT64}", "a checkpoint ends with a newline"),
        ("o\n1\n", "a checkpoint has an origin, a size and a root line"),
        (f"\n1\n{ROOT64}\n", "a checkpoint has an origin, a size and a root line"),
        (f"o\n1\n{ROOT64}\n\nextension\n", "a checkpoint has an origin, a size and a root line"),
        (f"o\nseven\n{ROOT64}\n", "the checkpoint's size is not a decimal number"),
        (f"o\n007\n{ROOT64}\n", "the checkpoint's size is not a decimal number"),
        (f"o\n-1\n{ROOT64}\n", "the checkpoint's size is not a decimal number"),
        # 2^64: one past a uint64, though it has the 20 digits the old pattern allowed
        (f"o\n18446744073709551616\n{ROOT64}\n", "the checkpoint's size is not a decimal number"),
        ("o\n1\nAA!A\n", "the checkpoint's root is not valid base64"),
        ("o\n1\nAAAA\n", "the checkpoint's root is not 32 bytes"),
    ],
)
def test_a_malformed_checkpoint_is_refused_saying_why(text: str, message: str) -> None:
    with pytest.raises(NoteError) as refused:
        parse_checkpoint(text)
    assert str(refused.value) == message


def test_an_origin_may_hold_spaces_and_a_note_text_must_end_its_line() -> None:
    assert parse_checkpoint(f"my log\n7\n{ROOT64}\nextra line\n") == (
        "my log",
        7,
        bytes(range(32)),
    )
    with pytest.raises(NoteError) as refused:
        sign_note("no newline", Signer.generate("log.test"))
    assert str(refused.value) == "a note's text ends with a newline"


@pytest.mark.parametrize("origin", ["", "shop\nextra", "\n"])
def test_a_checkpoints_origin_must_be_one_non_empty_line(origin: str) -> None:
    with pytest.raises(NoteError) as refused:
        checkpoint_text(origin, 1, bytes(32))
    assert str(refused.value) == "the origin is one non-empty line"


def test_the_largest_tree_size_is_2_to_the_64_minus_1() -> None:
    root = base64.b64encode(bytes(32)).decode()
    largest = 2**64 - 1
    assert parse_checkpoint(f"o\n{largest}\n{root}\n")[1] == largest
    with pytest.raises(NoteError, match="size is not a decimal number"):
        parse_checkpoint(f"o\n{largest + 1}\n{root}\n")


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        ("", "not a signed note: it is empty"),
        (" \n\t\n", "not a signed note: it holds only white space"),
    ],
)
def test_an_empty_or_blank_note_is_called_so(note: str, reason: str) -> None:
    verifier = Verifier.parse(Signer.generate("log.test").verifier_key())
    with pytest.raises(NoteError) as refused:
        open_note(note, verifier)
    assert str(refused.value) == reason
