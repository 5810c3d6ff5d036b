"""How the API writes times: as JavaScript's ``Date.toISOString`` does, which Cloudflare's
API (and its clients' parsers) use."""

from __future__ import annotations

import pytest

from stepline.client.views import iso, parse_iso


@pytest.mark.parametrize(
    ("ms", "text"),
    [  # the right-hand sides as Node 20's new Date(ms).toISOString() printed them
        (0, "1970-01-01T00:00:00.000Z"),
        (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        (253_402_300_800_000, "+010000-01-01T00:00:00.000Z"),
        (364_184_475_859_313, "+013510-07-20T02:24:19.313Z"),
        (8_640_000_000_000_000, "+275760-09-13T00:00:00.000Z"),
    ],
)
def test_times_are_written_as_javascript_writes_them(ms, text):
    assert iso(ms) == text


@pytest.mark.parametrize("ms", [0, 1, 999, 951_782_400_000, 1_765_000_000_001, 253_402_300_799_999])
def test_a_time_written_reads_back_to_the_millisecond(ms):
    assert parse_iso(iso(ms)) == ms
