"""`templates.has_literal`: a redis-invalidate key pattern must name some key in particular.

Redis glob syntax: `*` and `?` match any character, `[...]` a class (`^` negates it,
`\\x` inside it is x, the first `]` closes it, unclosed it runs to the end), `\\x`
outside is x. A pattern of wildcards and classes alone matches keys of any name.
"""

from __future__ import annotations

import pytest

from eventstore.subscriptions.templates import has_literal, parse


@pytest.mark.parametrize(
    ("pattern", "names_a_key"),
    [
        ("*", False),
        ("**", False),
        ("?*", False),
        ("???", False),
        ("[a-z]*", False),
        ("*[^x]", False),
        ("[ab][cd]", False),
        ("[^ab]*", False),
        ("[a\\]]*", False),  # the escaped ] is inside the class
        ("[a\\]x]", False),
        ("[abc", False),  # unclosed: a class to the end
        ("[^", False),
        ("[", False),
        ("[]*", False),  # the first ] closes an empty class
        ("orders:*", True),
        ("X*", True),
        ("*x", True),
        ("[ab]x", True),
        ("[^ab]x", True),
        ("[]x", True),
        ("[a\\]]x", True),
        ("[\\\\]x", True),
        ("\\*", True),  # an escaped * is the character *
        ("*\\", True),  # a trailing backslash is matched as itself
        ("{entity_key}", True),
        ("*{type}", True),
    ],
)
def test_a_pattern_names_a_key_only_with_a_literal_or_a_placeholder(
    pattern: str, names_a_key: bool
) -> None:
    assert has_literal(parse(pattern)) is names_a_key
