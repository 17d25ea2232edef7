"""Secrets of a sink: literal, `{"env": NAME}` or `{"file": PATH}`, read when the sink is built."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


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


def values_of(sink: Mapping[str, Any]) -> list[str]:
    """Every secret value of a sink that can be read now (to scrub from errors and logs).

    The webhook `secret`(s), each `headers` value, and the password of the URL (a
    literal URL, or one read from the environment or a file). Unreadable ones are
    skipped: building the sink reports them.
    """
    raw: list[Any] = []
    secret = sink.get("secret")
    raw.extend(secret if isinstance(secret, list) else [secret] if secret is not None else [])
    headers = sink.get("headers")
    if isinstance(headers, Mapping):
        raw.extend(headers.values())
    out: list[str] = []
    for value in raw:
        try:
            out.append(resolve(value))
        except SecretError:
            continue
    url = sink.get("url")
    try:
        password = urlsplit(resolve(url)).password if url is not None else None
    except (SecretError, ValueError):
        password = None
    if password:
        out.append(password)
        if isinstance(url, dict):
            out.append(resolve(url))  # the whole URL, read from a reference
    # Longest first: a secret that contains another is removed whole.
    return sorted({v for v in out if v and v != "***"}, key=len, reverse=True)
