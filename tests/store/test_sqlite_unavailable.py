"""A SQLite file that cannot be written now (a full disk, an I/O error, a lock held past the
timeout) is an unavailable store, as a lost PostgreSQL server is: a run whose step result
cannot be recorded is abandoned where it stands, past any ``try`` in the workflow, and replayed
once the file can be written again; the API answers 503 in Cloudflare's envelope."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.api import StaticTokenAuthenticator, create_app
from stepline.errors import StoreUnavailable
from stepline.store.sqlite import SqliteStore
from stepline.store.sqlite_errors import as_store_error
from stepline.testing import TestClock, wait_for_status
from tests.workflows.probe import Probe

SCRIPT = "tests.store.test_sqlite_unavailable"
BIG = 300_000


class Swallowing(WorkflowEntrypoint):
    """Catches every error of its first step, as careless workflow code does."""

    async def run(self, event, step):
        try:
            await step.do("big", lambda: "x" * BIG)
        except Exception as exc:
            self.env.hit("swallowed")
            self.env.seen["error"].append(repr(exc))
        return await step.do("after", lambda: "after")


async def _limit_pages(store: SqliteStore, extra: int | None) -> None:
    """Let the file grow only ``extra`` pages more (None: no limit): a full disk, at will."""

    def limit(conn: sqlite3.Connection) -> None:
        pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        conn.execute(f"PRAGMA max_page_count = {1_073_741_823 if extra is None else pages + extra}")

    await store._writer.run(limit)  # the writer's own connection (private: a test's fault)


async def test_a_step_result_that_cannot_be_written_abandons_the_run(
    tmp_path: Path, probe: Probe
) -> None:
    clock = TestClock()
    store = SqliteStore(tmp_path / "stepline.sqlite3")
    async with Stepline(store, clock=clock, env=probe, lease="300 ms", stop_grace=100) as sl:
        flow = await sl.register("swallowing", Swallowing, script_name=SCRIPT)
        await _limit_pages(store, extra=20)  # room for the instance, not for the big step
        instance = await flow.create()
        for _ in range(500):
            await asyncio.sleep(0.01)
            if not sl.engine.runners and (await instance.status())["status"] == "running":
                break
        view = await instance.status()
        assert probe.calls["swallowed"] == 0, probe.seen["error"]
        assert view["status"] == "running"  # as it stood: no step after "big" ran
        assert [s["name"] for s in view["steps"]] in ([], ["big-1"])
        await _limit_pages(store, extra=None)  # the disk has room again
        clock.advance(1_000)  # the abandoned run's lease lapses; it is replayed
        view = await wait_for_status(instance, "complete", timeout=10)
    assert view["output"] == "after"
    assert probe.calls["swallowed"] == 0


@pytest.mark.parametrize(
    ("code", "unavailable"),
    [
        (sqlite3.SQLITE_FULL, True),
        (sqlite3.SQLITE_IOERR_WRITE, True),
        (sqlite3.SQLITE_BUSY, True),
        (sqlite3.SQLITE_READONLY, True),
        (sqlite3.SQLITE_CANTOPEN, True),
        (sqlite3.SQLITE_CONSTRAINT_UNIQUE, False),
        (sqlite3.SQLITE_ERROR, False),
    ],
)
def test_which_sqlite_errors_make_the_store_unavailable(code: int, unavailable: bool) -> None:
    error = sqlite3.OperationalError("what SQLite said")
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    translated = as_store_error(error)
    if unavailable:
        assert isinstance(translated, StoreUnavailable)
        assert "what SQLite said" in str(translated)
    else:
        assert translated is error


async def test_the_api_answers_503_while_the_file_cannot_be_written(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "stepline.sqlite3")
    async with Stepline(store, account_id="acct", run_engine=False) as sl:
        await sl.register("swallowing", Swallowing, script_name=SCRIPT)
        await _limit_pages(store, extra=0)
        app = create_app(sl.client, StaticTokenAuthenticator("acct", "token"))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            reply = await http.post(
                "/client/v4/accounts/acct/workflows/swallowing/instances",
                json={"params": {"pad": "y" * BIG}},
                headers={"Authorization": "Bearer token"},
            )
    assert reply.status_code == 503, reply.text
    body = reply.json()
    assert body["success"] is False
    assert body["errors"][0]["code"] == 10001


async def test_a_file_that_is_not_a_database_is_an_unavailable_store(tmp_path: Path):
    """Said in a sentence (the server prints it and exits 1), not as a traceback of the
    writer thread's start; the file is left as it was."""
    path = tmp_path / "notes.sqlite3"
    path.write_bytes(b"not a database, just notes\n" * 200)
    store = SqliteStore(path)

    with pytest.raises(StoreUnavailable, match=r"notes\.sqlite3: file is not a database; point"):
        await store.open()
    assert path.read_bytes() == b"not a database, just notes\n" * 200
