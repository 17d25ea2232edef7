"""A command with an answer takes Ctrl-C as a KeyboardInterrupt, however it was started.

A background job of a script (`eventstore verify &`) starts with SIGINT ignored. `main`
handles the stop signals from its first line (StopSignals) and, for a command that is no
service, gave the disposition before back: ignored, so `kill -INT` reached nothing and a
command waiting for MongoDB ran on until server selection gave up. It is Python's own
SIGINT handler now (the services take SIGINT however started too), and the ignored
disposition is put back when `main` returns.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from eventstore.cli.common import StopSignals


@pytest.fixture
def sigint_ignored() -> Iterator[None]:
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("sigint_ignored")
def test_sigint_ignored_at_start_is_a_keyboard_interrupt_for_the_command() -> None:
    signals = StopSignals()
    signals.install()
    signals.release()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    signals.restore()  # as `main` does when it returns
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


@pytest.mark.usefixtures("sigint_ignored")
def test_a_sigint_noted_during_start_up_of_a_command_started_ignoring_it_interrupts_it() -> None:
    signals = StopSignals()
    signals.install()
    signal.raise_signal(signal.SIGINT)  # noted while the command line is read
    assert signals.received == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        signals.release()
    signals.restore()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_a_handler_installed_before_is_given_back_as_it_was() -> None:
    def mine(signum: int, frame: object) -> None:
        pass

    before = signal.signal(signal.SIGINT, mine)
    try:
        signals = StopSignals()
        signals.install()
        signals.release()
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, before)
