"""inert(): a report's data with secret values masked and every string and key escaped, in one
pass. Its fast path for plain strings (model.common._plain) must give exactly what the general
escape(mask_secrets(...)) gives, for values and for keys."""

from __future__ import annotations

from enum import StrEnum

from hypothesis import given, settings
from hypothesis import strategies as st

from dynmigrate.model.common import _MAYBE_SECRET, _SECRET_HINTS, _may_hold_secret, _plain, escape, inert, mask_secrets

# pieces that make both paths work: every secret hint in several cases, values after them,
# backslashes, terminal controls, non-ASCII look-alikes (U+017F folds to s, U+212A to K)
PIECES = [
    *_SECRET_HINTS,
    *(h.upper() for h in _SECRET_HINTS),
    *(h.title() for h in _SECRET_HINTS),
    "DB_PASSWORD=hunter2",
    "--api-token abc",
    "https://u:pw@host/",
    "=",
    " ",
    "-",
    "/var/lib/x",
    "a",
    "\\",
    "\x1b[31m",
    "\n",
    "é",
    "\u017f",
    "\u212a",
    "\ud800",
]
TEXTS = st.lists(st.sampled_from(PIECES), max_size=8).map("".join) | st.text(max_size=30)


@settings(max_examples=200, deadline=None)
@given(TEXTS)
def test_a_string_is_what_escape_and_mask_make_of_it(text: str) -> None:
    assert inert(text) == escape(mask_secrets(text))


@settings(max_examples=100, deadline=None)
@given(TEXTS, TEXTS)
def test_a_key_is_escaped_and_never_masked(key: str, value: str) -> None:
    want = escape(mask_secrets(value))
    assert inert({key: [value, (value,)]}) == {escape(key): [want, [want]]}


@settings(max_examples=200, deadline=None)
@given(TEXTS)
def test_the_hint_search_equals_the_secret_regex(text: str) -> None:
    # the case-sensitive search of lower() for ASCII text stands in for _MAYBE_SECRET's IGNORECASE
    assert _may_hold_secret(text) == (_MAYBE_SECRET.search(text) is not None)


def test_no_secret_hint_is_plain() -> None:
    for hint in _SECRET_HINTS:
        for text in (hint, hint.upper(), f"x{hint.title()}y", f"/a/{hint}/b"):
            assert not _plain(text), text
    assert [_plain(t) for t in ("/var/lib/redis", "a\\b", "\x1b", "é")] == [True, False, False, False]


def test_a_str_subclass_keeps_its_type() -> None:
    class Confidence(StrEnum):
        CERTAIN = "certain"

    out = inert({"c": Confidence.CERTAIN, "n": 3, "none": None})
    assert out == {"c": "certain", "n": 3, "none": None}
    assert type(out["c"]) is Confidence
