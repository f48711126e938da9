"""Properties of the one validation of caller-given model names and versions
(``core.common.ModelRef.parse_name`` / ``parse_version`` / ``version_number``): ASCII digits
only, int64 versions, names that are one plain directory name; never an exception other than
the field-named ``InvalidArgumentError``, and never an unbounded message."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wasteml_server.core.common import (
    MAX_MODEL_NAME_CHARS,
    MAX_MODEL_VERSION,
    ModelRef,
    is_model_name,
    version_number,
)
from wasteml_server.core.errors import InvalidArgumentError

#: Digits that ``str.isdigit`` accepts but are not ASCII: superscripts ("²", which ``int``
#: refuses) and decimal digits of other scripts ("٣", which ``int`` reads as 3).
NON_ASCII_DIGITS = st.characters(categories=["Nd", "No"]).filter(
    lambda c: c.isdigit() and not c.isascii())
ASCII_NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"

any_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="0123456789", max_size=30),
    st.builds(lambda a, d, b: a + d + b, st.text("0123456789", max_size=5), NON_ASCII_DIGITS,
              st.text("0123456789", max_size=5)),
    st.integers(-(2**70), 2**70).map(str),
    st.just("9" * 5000),
)


@settings(max_examples=300, deadline=None)
@given(any_text)
@example("²")
@example("٣")
@example("99999999")
@example(str(2**63))
@example(str(2**63 - 1))
@example("0")
@example("01")
@example(" 1")
@example("1\n")
def test_parse_version_accepts_exactly_ascii_int64_versions(text: str) -> None:
    """parse_version returns n only for the canonical ASCII spelling of 1..2^63-1, None for "",
    and raises InvalidArgumentError on the given field (with a bounded message) otherwise."""
    canonical = (text.isascii() and text.isdigit() and not text.startswith("0")
                 and 1 <= int(text) <= MAX_MODEL_VERSION) if text and len(text) < 30 else False
    if not text:
        assert ModelRef.parse_version(text, "version") is None
    elif canonical:
        assert ModelRef.parse_version(text, "version") == int(text)
        assert version_number(text) == int(text)
    else:
        with pytest.raises(InvalidArgumentError) as info:
            ModelRef.parse_version(text, "model.version")
        assert info.value.field == "model.version"
        assert len(info.value.message) < 400
        assert version_number(text) is None


@settings(max_examples=100, deadline=None)
@given(NON_ASCII_DIGITS, st.text("0123456789", max_size=3))
def test_non_ascii_digits_are_never_a_version(digit: str, rest: str) -> None:
    """A version holding any non-ASCII digit (isdigit() is True for it) is refused."""
    for text in (digit, digit + rest, rest + digit):
        with pytest.raises(InvalidArgumentError):
            ModelRef.parse_version(text)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, MAX_MODEL_VERSION))
def test_every_int64_version_round_trips(n: int) -> None:
    """str(n) parses back to n for every version 1..2^63-1; ModelRef.parse inverts str()."""
    assert ModelRef.parse_version(str(n)) == n
    ref = ModelRef("text_encoder", n)
    assert ModelRef.parse(str(ref)) == ref


def test_versions_beyond_int64_are_refused() -> None:
    """2^63 (Triton's stol overflows) and 5,000 digits (Python's int limit) are refused
    without converting them."""
    for text in (str(2**63), str(2**64), "9" * 5000):
        assert version_number(text) is None
        with pytest.raises(InvalidArgumentError, match=r"^version: "):
            ModelRef.parse_version(text, "version")
    with pytest.raises(ValueError):
        ModelRef.parse("text_encoder:²")


names = st.one_of(
    st.text(alphabet=ASCII_NAME_CHARS, min_size=0, max_size=140),
    st.text(max_size=30),
    st.sampled_from([".", "..", "../x", "a/b", "a\\b", "-rf", "a\x00b", "x" * 300, "fill_level",
                     "text_encoder_int8", "é", "a b"]),
)


@settings(max_examples=300, deadline=None)
@given(names)
def test_parse_name_accepts_only_plain_directory_names(name: str) -> None:
    """An accepted name is 1..128 of [A-Za-z0-9_.-], does not start with '.' or '-', and is one
    path component; anything else is InvalidArgumentError on the field, bounded message."""
    ok = (0 < len(name) <= MAX_MODEL_NAME_CHARS and all(c in ASCII_NAME_CHARS for c in name)
          and name[0] not in ".-")
    assert is_model_name(name) == ok
    if ok:
        assert ModelRef.parse_name(name, "name") == name
        assert PurePosixPath(name).name == name and name not in (".", "..")
        assert "/" not in name and "\\" not in name
    else:
        with pytest.raises(InvalidArgumentError) as info:
            ModelRef.parse_name(name, "name")
        assert info.value.field == "name"
        assert len(info.value.message) < 400
