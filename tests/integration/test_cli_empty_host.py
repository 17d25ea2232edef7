"""`--host ''` is `--host` not given: the default, this machine alone (127.0.0.1).

As for every setting, an empty value is the value not given. Passed on, `""` was every
interface (getaddrinfo's and uvicorn's reading of it): `serve --host ''` exposed the API,
with or without an admin key, on the network without a word. `EVENTSTORE_HOST` is no
setting: a WARNING names it, and it changes nothing.
"""

from __future__ import annotations

import pytest

from eventstore.cli.parser import build_parser
from eventstore.cli.serve import bind
from eventstore.settings import unknown_variables


@pytest.mark.parametrize("command", ["serve", "run", "demo"])
def test_an_empty_host_listens_on_the_loopback_address_alone(command: str) -> None:
    parsed = build_parser().parse_args([command, "--host", "", "--port", "0"])
    assert parsed.host == "127.0.0.1"
    sock = bind(parsed.host, parsed.port)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


def test_every_interface_is_written_out() -> None:
    assert build_parser().parse_args(["serve", "--host", "0.0.0.0"]).host == "0.0.0.0"
    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"


def test_eventstore_host_is_no_setting_and_is_said_so() -> None:
    assert unknown_variables({"EVENTSTORE_HOST": "0.0.0.0"}) == [
        "EVENTSTORE_HOST is no setting: ignored"
    ]
