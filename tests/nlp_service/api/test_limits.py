"""The request limits on their own: strict ASCII integers and JSON nesting depth."""

from __future__ import annotations

import pytest

from nlp_service.api.limits import MAX_JSON_DEPTH, json_depth, json_depth_refusal, parse_ascii_int


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "1\u00b2", "-1", "+1", " 1", "1.0", "",
                                   "0x10", "1_000"])
def test_only_ascii_digits_are_integers(value: str) -> None:
    # "²" and "٣" pass str.isdigit(), which the FHIR routes used to trust.
    with pytest.raises(ValueError, match="is not an integer"):
        parse_ascii_int(value, name="n", low=0, high=10)


def test_bounds_refuse_or_clamp_numbers_of_any_length() -> None:
    assert parse_ascii_int("007", name="n", low=0, high=10) == 7
    with pytest.raises(ValueError, match="out of range: 1 to 10"):
        parse_ascii_int("9" * 5000, name="n", low=1, high=10)
    assert parse_ascii_int("9" * 5000, name="n", low=0, high=500, clamp=True) == 500
    assert parse_ascii_int("0" * 40 + "3", name="n", low=0, high=500, clamp=True) == 3


def test_json_depth_counts_brackets_outside_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[{{"}], "c": "\\"]]"}') == 3
    assert json_depth(b'"no nesting"') == 0
    assert json_depth(b'{"a": 1}\n[[2]]\n') == 2  # JSON Lines: the deepest line
    deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    assert json_depth_refusal(deep) == (f"JSON nested {MAX_JSON_DEPTH + 1} levels deep; at "
                                        f"most {MAX_JSON_DEPTH} are accepted")
    assert json_depth_refusal(deep[1:-1]) is None
