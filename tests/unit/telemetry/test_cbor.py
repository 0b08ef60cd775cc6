"""The bounded CBOR decoder: what cbor2 encodes canonically reads back; nothing else does."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.pumpservice.args import shown
from openitb.telemetry import cbor

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20)
    | st.binary(max_size=20) | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner,
                                                               max_size=5),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(values)
def test_canonical_cbor2_round_trips(value: object) -> None:
    assert cbor.loads(cbor2.dumps(value, canonical=True)) == value


@pytest.mark.parametrize(("data", "reason"), [
    (cbor2.dumps(2**64), "tag 2"),                                  # bignum
    (cbor2.dumps([[1], [1]], value_sharing=True), "tag 28"),       # shared reference
    (b"\xd8\x1d\x00", "tag 29"),
    (cbor2.dumps(cbor2.CBORTag(1, 0)), "tag 1"),                    # a date
    (b"\x9f\x01\xff", "indefinite"),
    (b"\xa2\x61a\x01\x61a\x02", "duplicate"),
    (b"\xa1\x81\x00\x01", "map keys"),                              # a list as a key
    (b"\x81" * 20 + b"\x00", "deeper"),
    (b"\x9a\x00\x01\x00\x00", "at most"),                           # 65536 items claimed
    (b"\x62\xff\xfe", "UTF-8"),
    (b"\x01\x02", "after"),
    (b"\x5a\xff\xff\xff\xff", "truncated"),
    (b"\xf7", "simple value"),                                      # undefined
])
def test_everything_outside_the_subset_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(cbor.CborError, match=reason):
        cbor.loads(data)


def test_many_small_items_stop_at_the_item_budget() -> None:
    data = b"\x99\x03\xe8" + (b"\x84\x00\x00\x00\x00" * 1000)  # 1000 arrays of 4: 5001 items
    with pytest.raises(cbor.CborError, match="items"):
        cbor.loads(data)


def test_error_text_never_walks_or_prints_a_large_value() -> None:
    x: list[object] = []
    for _ in range(60):
        x = [x, x]  # 2^60 leaves if walked
    assert shown(x) == "a list of 2 items"
    assert "digits" in shown(2**20000) and len(shown(2**20000)) < 60
    assert len(shown("y" * 16_300)) < 100 and "16300 characters" in shown("y" * 16_300)
