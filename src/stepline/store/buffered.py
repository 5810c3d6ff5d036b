"""The storage limit as it applies to events an instance holds and no wait has taken yet."""

from __future__ import annotations

from stepline.errors import CannotSendEvent
from stepline.sizes import format_size
from stepline.validation import utf8_size

__all__ = ["check_buffered"]


def check_buffered(buffered_bytes: int, payload: str, limit: int | None) -> None:
    """Refuse (``CannotSendEvent``) an event whose payload would take what the instance holds
    untaken, ``buffered_bytes``, past ``limit`` bytes; no ``limit``, no check."""
    if limit is None:
        return
    if buffered_bytes + utf8_size(payload) > limit:
        raise CannotSendEvent(
            f"the events this instance holds and has not yet taken would exceed its "
            f"{format_size(limit)} storage limit; it takes more once a wait takes some"
        )
