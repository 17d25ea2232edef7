"""Secrets of a sink: literal, `{"env": NAME}` or `{"file": PATH}`, read when the sink is built."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class SecretError(ValueError):
    """A referenced secret cannot be read (the message names the reference, never a value)."""


def resolve(secret: Any, *, env: Mapping[str, str] | None = None) -> str:
    """The secret's value: a literal as it is, an environment variable, or a file's first line."""
    if isinstance(secret, str):
        return secret
    if isinstance(secret, dict) and "env" in secret:
        value = (os.environ if env is None else env).get(str(secret["env"]))
        if not value:
            raise SecretError(f"environment variable {secret['env']} is not set")
        return value
    if isinstance(secret, dict) and "file" in secret:
        try:
            text = Path(str(secret["file"])).read_text(encoding="utf-8")
        except OSError as exc:
            raise SecretError(f"cannot read secret file {secret['file']}: {exc.strerror}") from None
        value = text.strip()
        if not value:
            raise SecretError(f"secret file {secret['file']} is empty")
        return value
    raise SecretError('a secret is a string, {"env": NAME} or {"file": PATH}')
