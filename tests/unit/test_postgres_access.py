"""The URL a start-up failure shows keeps no secret: its password and its query go."""

from __future__ import annotations

import pytest

from stepline.store.postgres_access import public_url


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://app:s3cret@db:5433/flows", "postgresql://app:***@db:5433/flows"),
        ("postgresql://app@db/flows", "postgresql://app@db/flows"),
        ("postgres://db/flows?password=s3cret&sslmode=require", "postgres://db/flows"),
        ("postgresql://app:@db/flows", "postgresql://app:***@db/flows"),
        (  # several hosts, as asyncpg takes them
            "postgresql://app:s3cret@h1:5432,h2:5433/flows",
            "postgresql://app:***@h1:5432,h2:5433/flows",
        ),
        ("postgresql://app:p@ss@[::1]:5432/flows", "postgresql://app:***@[::1]:5432/flows"),
    ],
)
def test_the_url_shown_hides_the_password(dsn: str, shown: str) -> None:
    assert public_url(dsn) == shown
