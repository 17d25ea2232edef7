"""The signer state file: two checked slots written in place, so a torn write loses nothing."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from eventstore.settings import SettingsError
from eventstore.signing import SLOT, SignerState, load_signer, read_state, write_state


def state(size: int) -> SignerState:
    return SignerState(origin="eventstore/test", size=size, root=f"root{size}")


def test_each_write_is_read_back_and_the_file_keeps_its_two_slots(tmp_path: Path) -> None:
    path = str(tmp_path / "state")
    assert read_state(path) is None
    for size in range(1, 8):
        write_state(path, state(size))
        assert read_state(path) == state(size)
        assert os.path.getsize(path) == 2 * SLOT
    assert not (tmp_path / "state.tmp").exists()
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_a_write_torn_by_a_crash_leaves_the_previous_state(tmp_path: Path) -> None:
    path = str(tmp_path / "state")
    write_state(path, state(10))
    write_state(path, state(20))  # the second slot
    data = bytearray(Path(path).read_bytes())
    newest = 1 if b'"size":20' in data[SLOT:] else 0
    # Half of the newest record reached the disk, the rest is what was there before.
    offset = newest * SLOT
    data[offset + 30 : offset + SLOT] = b"\0" * (SLOT - 30)
    Path(path).write_bytes(bytes(data))
    assert read_state(path) == state(10)
    # The next write goes over the torn slot, never over the good one.
    write_state(path, state(30))
    assert read_state(path) == state(30)
    assert b'"size":10' in Path(path).read_bytes()


def test_a_record_whose_check_fails_is_not_believed(tmp_path: Path) -> None:
    path = str(tmp_path / "state")
    write_state(path, state(10))
    write_state(path, state(20))
    data = Path(path).read_bytes().replace(b'"size":20', b'"size":99')
    Path(path).write_bytes(data)
    assert read_state(path) == state(10)


def test_both_slots_spoiled_is_refused_not_taken_for_no_state(tmp_path: Path) -> None:
    path = tmp_path / "state"
    write_state(str(path), state(10))
    path.write_bytes(b"x" * (2 * SLOT))
    with pytest.raises(SettingsError, match="neither slot"):
        read_state(str(path))


def test_a_plain_json_state_is_read_and_rewritten_whole_on_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.write_text(json.dumps({"origin": "eventstore/test", "size": 5, "root": "root5"}))
    assert read_state(str(path)) == state(5)
    write_state(str(path), state(6))
    assert read_state(str(path)) == state(6)
    assert path.stat().st_size == 2 * SLOT


def test_garbage_is_not_a_state(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.write_text("not json")
    with pytest.raises(SettingsError, match="not a signer state"):
        read_state(str(path))


def test_the_longest_state_that_fits_a_slot_is_kept_and_one_byte_more_is_refused(
    tmp_path: Path,
) -> None:
    """A record may fill its slot but for the newline that ends it; never spill into the other."""
    # The other fields of a record take fewer than 200 bytes: some origin in this range fits
    # and a longer one does not.
    for length in range(SLOT - 200, SLOT):
        path = str(tmp_path / f"state{length}")
        long = SignerState(origin="o" * length, size=7, root="root7")
        try:
            write_state(path, long)
        except SettingsError as exc:
            assert str(exc) == (
                "the signer state does not fit its slot (an origin line that long?)"
            )
            assert not os.path.exists(path)
            break
        assert os.path.getsize(path) == 2 * SLOT
        assert read_state(path) == long
    else:
        pytest.fail("no origin was too long for a slot")
    assert length > SLOT - 200  # the shorter ones fitted


def test_a_torn_write_after_many_falls_back_to_the_last_completed_one(tmp_path: Path) -> None:
    """Writes alternate between the slots, so the other slot always holds the previous state."""
    path = str(tmp_path / "state")
    for size in range(1, 6):
        write_state(path, state(size))
    data = bytearray(Path(path).read_bytes())
    newest = 1 if b'"size":5' in data[SLOT:] else 0
    data[newest * SLOT + 30 : (newest + 1) * SLOT] = b"\0" * (SLOT - 30)
    Path(path).write_bytes(bytes(data))
    assert read_state(path) == state(4)
    write_state(path, state(6))  # over the torn slot
    assert read_state(path) == state(6)
    assert b'"size":4' in Path(path).read_bytes()


def test_a_directory_that_cannot_be_synced_does_not_fail_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some filesystems refuse fsync on a directory (EINVAL): the state is written all the same."""
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = str(tmp_path / "state")
    write_state(path, state(1))
    assert read_state(path) == state(1)


def test_later_writes_overwrite_the_file_in_place_even_as_descriptor_0(tmp_path: Path) -> None:
    """In a process whose stdin is closed (a daemon), the state file opens as descriptor 0."""
    path = str(tmp_path / "state")
    write_state(path, state(1))  # the first write makes the file whole
    inode = os.stat(path).st_ino
    saved = os.dup(0)
    os.close(0)
    try:
        write_state(path, state(2))
    finally:
        os.dup2(saved, 0)
        os.close(saved)
    assert read_state(path) == state(2)
    assert os.stat(path).st_ino == inode  # one slot rewritten in place, not a new file
    assert not (tmp_path / "state.tmp").exists()


@pytest.mark.parametrize("data", [b"\xff\xfe PRIVATE+KEY", bytes(range(128, 178))])
def test_a_signing_key_file_that_is_not_utf8_is_one_line_naming_it(
    tmp_path: Path, data: bytes
) -> None:
    key = tmp_path / "bk.key"
    key.write_bytes(data)
    os.chmod(key, 0o600)
    with pytest.raises(SettingsError) as refused:
        load_signer(str(key))
    assert str(refused.value) == f"SIGNING_KEY {key} is not a key file: not UTF-8 (at byte 0)"
    assert refused.value.setting == "signing_key"


def test_the_cli_reports_a_signing_key_file_that_is_not_utf8_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventstore.cli import main

    key = tmp_path / "bk.key"
    key.write_bytes(b"PRIVATE+KEY+\xe4")
    os.chmod(key, 0o600)
    changes = tmp_path / "changes.ndjson"
    changes.write_text("")
    monkeypatch.setenv("EVENTSTORE_SIGNING_KEY", str(key))
    argv = ["ingest", "--uri", "memory://", "--source", f"ndjson:{changes}", "--until-idle"]
    assert main(argv) == 1
    # named by the variable it came from (a line about a setting names its variable or flag)
    line = f"EVENTSTORE_SIGNING_KEY {key} is not a key file: not UTF-8 (at byte 12)"
    assert capsys.readouterr().err == f"eventstore: error: {line}\n"
