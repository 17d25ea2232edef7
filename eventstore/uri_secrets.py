"""The parts of a MongoDB URI that may be secrets, and the URI without them (pure).

A URI carries secrets in its user info (`mongodb://user:password@…`) and in two
options: `authMechanismProperties` (an AWS session token, an OIDC token resource)
and `tlsCertificateKeyFilePassword`. None of them is ever shown: each is `***`.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

# The user info of a URI quoted anywhere in a text (`mongodb://` or `mongodb+srv://`).
_USER_INFO: Final = re.compile(r"(mongodb(?:\+srv)?://)[^@/\s]+@")
# The options whose value may be a secret (URI option names are case-insensitive).
SECRET_OPTIONS: Final = ("authMechanismProperties", "tlsCertificateKeyFilePassword")
# One of them, as `name=value` in a URI's query (any case).
_SECRET_OPTION: Final = re.compile(r"(?i)\b(" + "|".join(SECRET_OPTIONS) + r")=([^&;#\s]*)")


def scrub(text: str) -> str:
    """The text with every MongoDB URI's credentials and secret options as `***`."""
    return _SECRET_OPTION.sub(r"\1=***", _USER_INFO.sub(r"\1***@", text))


def secrets_of(uri: str) -> list[str]:
    """The secret texts of a URI (as written and percent-decoded), longest first.

    For cutting them out of a driver's message that quotes them in other words.
    """
    rest = uri.partition("://")[2]
    userinfo = rest[: rest.rfind("@")] if "@" in rest else ""
    password = userinfo.partition(":")[2]
    found = {userinfo, password}
    for match in _SECRET_OPTION.finditer(uri.partition("?")[2]):
        found.add(match.group(2))
        # `authMechanismProperties` is `KEY:value,KEY:value`: each value alone too.
        found.update(part.partition(":")[2] for part in match.group(2).split(","))
    found |= {unquote(s) for s in found}
    return sorted(found - {""}, key=len, reverse=True)
