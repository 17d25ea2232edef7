"""Production salts: 32 bytes from the OS's CSPRNG, never the same twice."""

from __future__ import annotations

import os

import pytest

from eventstore import capture
from eventstore.chain import SALT_BYTES


def test_os_salts_are_32_bytes_and_never_repeat() -> None:
    salts = [capture.os_salt("same id") for _ in range(3 * 256 + 7)]  # across pool refills
    assert all(len(s) == SALT_BYTES for s in salts)
    assert len(set(salts)) == len(salts)


def test_the_suite_swaps_only_the_source_and_random_salt_follows_it() -> None:
    # tests/conftest.py makes salts deterministic; random_salt reads the source at call time.
    assert capture.random_salt("e1") == capture.random_salt("e1")
    assert capture.random_salt("e1") != capture.random_salt("e2")
    assert capture.salt_source is not capture.os_salt


def test_the_pool_reads_the_os_once_per_256_salts_and_hands_out_consecutive_slices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One system call per 256 events; each salt is the next 32 bytes of what was read."""
    reads: list[bytes] = []

    def urandom(size: int) -> bytes:
        data = bytes((len(reads) * 7 + i) % 251 for i in range(size))
        reads.append(data)
        return data

    monkeypatch.setattr(os, "urandom", urandom)
    pool = capture._SaltPool()
    salts = [pool.take() for _ in range(257)]
    assert [len(r) for r in reads] == [256 * SALT_BYTES, 256 * SALT_BYTES]
    assert salts[:256] == [reads[0][i * SALT_BYTES : (i + 1) * SALT_BYTES] for i in range(256)]
    assert salts[256] == reads[1][:SALT_BYTES]
