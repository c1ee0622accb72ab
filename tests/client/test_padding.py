"""Length buckets: powers of two up to 4 KiB, then 4 KiB steps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlink.client.padding import MIN_BUCKET, STEP, bucket


@pytest.mark.parametrize(
    ("n", "padded"),
    [
        (0, 64),
        (64, 64),
        (65, 128),
        (2048, 2048),
        (2049, 4096),
        (4096, 4096),
        (4097, 8192),
        (8192, 8192),
        (8193, 12288),
    ],
)
def test_bucket_boundaries(n: int, padded: int) -> None:
    assert bucket(n) == padded


@given(st.integers(min_value=0, max_value=10**7))
def test_a_bucket_holds_its_length_and_is_a_bucket(n: int) -> None:
    b = bucket(n)
    assert b >= n
    assert bucket(b) == b
    assert (b >= MIN_BUCKET and b & (b - 1) == 0) or b % STEP == 0


def test_negative_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        bucket(-1)
