"""Templates of sink targets (`url`, `channel`, `keys`, `stream`): pure parsing and rendering.

`{stream}`, `{entity_key}`, `{typed_key}`, `{type}`, `{seq}`, `{version}` are substituted
(`{typed_key}`: the key that names the entity alone when given back to the API);
`{{` and `}}` are literal braces; any other placeholder is refused when the
template is parsed (at configuration time, never at delivery time).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import quote

PLACEHOLDERS: Final = ("stream", "entity_key", "typed_key", "type", "seq", "version")
# Characters with a meaning in Redis glob patterns (SCAN MATCH).
GLOB_CHARS: Final = frozenset("*?[]\\")


class TemplateError(ValueError):
    """A template that cannot be parsed: the message says why."""


# A parsed template: literal strings and placeholder names, alternating as written.
Part = tuple[bool, str]  # (is_placeholder, text)


def parse(template: str) -> tuple[Part, ...]:
    """The template's parts; TemplateError on an unknown placeholder or a stray brace."""
    parts: list[Part] = []
    literal: list[str] = []
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c == "{":
            if template.startswith("{{", i):
                literal.append("{")
                i += 2
                continue
            end = template.find("}", i)
            if end < 0:
                raise TemplateError(f"unclosed '{{' at position {i} (write '{{{{' for a brace)")
            name = template[i + 1 : end]
            if name not in PLACEHOLDERS:
                raise TemplateError(
                    f"unknown placeholder {{{name}}}: use one of "
                    + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
                )
            if literal:
                parts.append((False, "".join(literal)))
                literal = []
            parts.append((True, name))
            i = end + 1
            continue
        if c == "}":
            if template.startswith("}}", i):
                literal.append("}")
                i += 2
                continue
            raise TemplateError(f"stray '}}' at position {i} (write '}}}}' for a brace)")
        literal.append(c)
        i += 1
    if literal:
        parts.append((False, "".join(literal)))
    return tuple(parts)


def render(
    parts: tuple[Part, ...], values: Mapping[str, str], escape: Callable[[str], str] = str
) -> str:
    """The template with each placeholder replaced by `escape(value)`."""
    return "".join(escape(values[text]) if is_ph else text for is_ph, text in parts)


def url_escape(value: str) -> str:
    """Percent-encode a substituted value for a URL (a `/` or `?` in a key stays inside it)."""
    return quote(value, safe="")


def glob_escape(value: str) -> str:
    """Escape a substituted value for a Redis glob pattern: a key `*` matches only `*`."""
    return "".join("\\" + c if c in GLOB_CHARS else c for c in value)


def is_pattern(parts: tuple[Part, ...]) -> bool:
    """True when the template's own literal text holds glob characters (a pattern of keys)."""
    return any(not is_ph and any(c in GLOB_CHARS for c in text) for is_ph, text in parts)


def uses(parts: tuple[Part, ...]) -> bool:
    """True when the template has at least one placeholder."""
    return any(is_ph for is_ph, _ in parts)


def has_literal(parts: tuple[Part, ...]) -> bool:
    """True when a key pattern holds a placeholder or a character matched as itself.

    In Redis glob syntax `*` and `?` match any character and `[...]` a class of
    them; `\\x` is the literal `x`. A pattern of wildcards and classes alone
    (`*`, `**`, `?*`, `[a-z]*`) names no key in particular: it matches keys of
    any name. A placeholder's value is glob-escaped, so it is matched as itself.
    """
    for is_ph, text in parts:
        if is_ph:
            return True
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c == "[":
                i = _class_end(text, i)
            elif c in "*?":
                i += 1
            else:  # a literal; `\x` too is x (and a trailing `\` is matched as itself)
                return True
    return False


def _class_end(text: str, start: int) -> int:
    """Where the `[...]` class opened at `start` ends, as Redis reads it (to the end if unclosed).

    A leading `^` (negation) needs no case of its own: it is neither `\\` nor `]`.
    """
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == "]":
            return i + 1
        else:
            i += 1
    return len(text)
