"""Sizes in bytes, as a user writes them (``--storage-limit``)."""

from __future__ import annotations

import pytest

from stepline.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4_096),
        ("1B", 1),
        ("100MB", 100_000_000),
        ("100mb", 100_000_000),
        ("2 kB", 2_000),
        ("1GB", 1_000_000_000),
        ("1TB", 10**12),
        ("4KiB", 4_096),
        ("100 MiB", 100 * 2**20),
        ("1GiB", 2**30),
        (" 1gib ", 2**30),
        ("1.5GiB", 3 * 2**29),
        ("1.1GB", 1_100_000_000),
        ("2TiB", 2**41),
    ],
)
def test_sizes_are_read_in_their_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["", "lots", "1 GiBs", "1 GiB 2", "-1MB", "1e9", "1,000", "GiB", "1 Gi B", "0x10"]
)
def test_what_is_not_a_size_is_refused_with_the_units_named(text: str) -> None:
    with pytest.raises(ValueError, match=r"storage limit .* is not a size: .*MiB"):
        parse_size(text, what="storage limit")


@pytest.mark.parametrize("text", ["0", "0 GiB", "0.1B", "0.0001kB"])
def test_less_than_a_byte_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="storage limit"):
        parse_size(text, what="storage limit")


@pytest.mark.parametrize(
    ("size", "text"), [(2**30, "1GiB"), (3 * 2**20, "3MiB"), (4096, "4KiB"), (1500, "1500B")]
)
def test_a_size_is_written_in_the_largest_unit_that_holds_it_whole(size: int, text: str) -> None:
    assert format_size(size) == text
    assert parse_size(text) == size
