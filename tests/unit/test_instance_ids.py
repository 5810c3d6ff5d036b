"""Generated instance ids are random version-4 UUIDs in their usual text form (spec §1.2 (6))."""

from __future__ import annotations

import uuid

from stepline.engine.instances import random_instance_ids


def test_each_id_is_a_random_uuid4_written_as_uuid_writes_it() -> None:
    ids = random_instance_ids(500)

    assert len(ids) == 500 and len(set(ids)) == 500
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_every_random_bit_varies() -> None:
    """The 122 bits that are not version or variant take both values across ids."""
    values = [uuid.UUID(text).int for text in random_instance_ids(200)]
    fixed = (0xF << 76) | (0x3 << 62)
    varying = ((1 << 128) - 1) & ~fixed
    ones = 0
    zeros = 0
    for value in values:
        ones |= value
        zeros |= ~value
    assert ones & varying == varying and zeros & varying == varying


def test_none_asked_none_given() -> None:
    assert random_instance_ids(0) == []
