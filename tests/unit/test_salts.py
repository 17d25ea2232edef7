"""Production salts: 32 bytes from the OS's CSPRNG, never the same twice."""

from __future__ import annotations

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
