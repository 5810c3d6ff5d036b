"""A warning when something holds up the event loop's thread.

Every async step body, the engine and the API share one event loop. An ``async def`` step
that blocks (``time.sleep``, a synchronous HTTP call, a long computation) stops all of it:
other instances' steps, timers, event deliveries, requests, and on PostgreSQL the renewal of
the engine's leases. A thread beside the loop notices when the loop has not come round for
a while and logs where its thread is, so that the code can be moved into a sync step (which
runs on a thread of its own) or made to await.
"""

from __future__ import annotations

import asyncio
import logging
import site
import sys
import sysconfig
import threading
import time
from pathlib import Path
from types import FrameType

__all__ = ["LoopWatch"]

log = logging.getLogger("stepline.engine")

_HELD_AFTER_S = 1.0
"""How long the loop may go without coming round before the watch says so."""
_SHOWN_FRAMES = 3
"""Frames of the held-up code named in the warning, innermost first."""
_INSTALLED = tuple(
    Path(p).resolve()
    for p in {
        *site.getsitepackages(),
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
    }
)
"""Where installed packages live: an HTTP client's frames, rather than the step calling it."""
_RUNNING_IT = (Path(sysconfig.get_paths()["stdlib"]).resolve(), Path(__file__).resolve().parents[1])
"""The standard library and Stepline itself: where the loop's thread runs, not what holds it."""


class LoopWatch:
    """Watches the running loop from a thread of its own, from :meth:`start` to :meth:`stop`."""

    def __init__(self, held_after_s: float = _HELD_AFTER_S) -> None:
        self._held_after_s = held_after_s
        self._beat_every_s = held_after_s / 4
        self._last_beat = time.monotonic()
        self._held_since: float | None = None
        """When the loop was last seen, if the watch has said it is held up since."""
        self._lock = threading.Lock()
        """Held while either thread reads and changes the two fields above."""
        self._stopped = threading.Event()
        self._loop_thread = 0
        self._timer: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """On the loop's thread, with the loop running."""
        self._loop_thread = threading.get_ident()
        self._beat()
        self._thread = threading.Thread(target=self._watch, name="stepline-loop-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _beat(self) -> None:
        now = time.monotonic()
        with self._lock:
            held_since, self._held_since, self._last_beat = self._held_since, None, now
        if held_since is not None:
            log.warning("the event loop went on after %.1f s held up", now - held_since)
        self._timer = asyncio.get_running_loop().call_later(self._beat_every_s, self._beat)

    def _watch(self) -> None:
        while not self._stopped.wait(self._beat_every_s):
            if time.monotonic() - self._last_beat < self._held_after_s:
                continue  # the common case: no stack is taken
            frame = sys._current_frames().get(self._loop_thread)
            with self._lock:
                last = self._last_beat
                held = time.monotonic() - last
                if held < self._held_after_s or self._held_since is not None:
                    continue  # it came round meanwhile, or is reported already
                # Marked under the lock: a beat after it says the loop went on.
                self._held_since = last
            log.warning(
                "the event loop has been held up for %.1f s, at %s: every instance's steps, "
                "timers and events, and the API, wait meanwhile. Blocking code belongs in a "
                "sync step (it runs on a thread) or must await",
                held,
                _where(frame),
            )


def _where(frame: FrameType | None) -> str:
    """The innermost frames of the project's code that holds the loop, up to the next frame
    that is not (Stepline's runner, which called the step): past the standard library's,
    Stepline's and installed packages' frames (a ``time.sleep`` or a blocking HTTP client
    shows the step that called it). Without any, the innermost installed package's."""
    stack: list[tuple[FrameType, str]] = []
    while frame is not None:
        stack.append((frame, _kind(frame.f_code.co_filename)))
        frame = frame.f_back
    for wanted in ("project", "installed"):
        shown: list[str] = []
        for frame, kind in stack:
            if kind == wanted:
                shown.append(
                    f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
                )
            elif shown:
                break
            if len(shown) == _SHOWN_FRAMES:
                break
        if shown:
            return " <- ".join(shown)
    return "a place outside the project's code"


def _kind(filename: str) -> str:
    if filename.startswith("<"):  # "<frozen importlib._bootstrap>", "<string>"
        return "running it"
    path = Path(filename).resolve()
    if any(path.is_relative_to(place) for place in _INSTALLED):
        return "installed"  # before the standard library, which may hold site-packages
    if any(path.is_relative_to(place) for place in _RUNNING_IT):
        return "running it"
    return "project"
