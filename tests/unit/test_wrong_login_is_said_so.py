"""A wrong user name or password is said so, never read as a missing privilege.

Outside testing: a server refusing the credentials (code 18, AuthenticationFailed) gave a
WARNING "could not create indexes (code 18); run eventstore migrate as an admin" on every
command, then "MongoDB refused an operation (code 18)".
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from eventstore.cli.bootstrap import _ensure_indexes
from eventstore.errors import user_message


def store_refusing(code: int) -> Any:
    async def refused() -> None:
        raise OperationFailure("refused", code=code)

    return SimpleNamespace(events=SimpleNamespace(ensure_indexes=refused))


def test_a_wrong_login_is_the_error_itself(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(OperationFailure) as raised:
        asyncio.run(_ensure_indexes(store_refusing(18)))
    assert "could not create indexes" not in caplog.text
    assert user_message(raised.value) == (
        "MongoDB refused the credentials (authentication failed): check the user name and password"
    )


def test_a_missing_privilege_is_a_warning_and_the_command_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        asyncio.run(_ensure_indexes(store_refusing(13)))  # Unauthorized: a read-only auditor
    assert "could not create indexes (code 13)" in caplog.text
    assert user_message(OperationFailure("not authorized", code=13)) == (
        "MongoDB refused an operation (code 13): not authorized"
    )
