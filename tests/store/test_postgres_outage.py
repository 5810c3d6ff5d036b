"""PostgreSQL outages, made with a TCP proxy between the store and the server that the test
cuts (every connection dropped, new ones refused) and restores."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlparse, urlunparse

import asyncpg
import pytest

from stepline.errors import StoreUnavailable
from stepline.store.port import Notice
from stepline.store.postgres import PostgresStore
from stepline.store.records import InstanceRecord, StepRecord

from .databases import postgres_url

pytestmark = pytest.mark.postgres

NOW = 1_700_000_000_000


class Proxy:
    """Forwards 127.0.0.1:<port> to the database until cut."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, server_w}
        await asyncio.gather(
            self._pipe(client_r, server_w), self._pipe(server_r, client_w), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


@pytest.fixture
async def proxied(postgres_database: str) -> AsyncIterator[tuple[PostgresStore, Proxy]]:
    parsed = urlparse(postgres_database)
    proxy = Proxy(parsed.hostname or "127.0.0.1", parsed.port or 5432)
    await proxy.start()
    url = urlunparse(parsed._replace(netloc=f"{parsed.username}@127.0.0.1:{proxy.port}"))
    store = PostgresStore(url, write_grace_s=10, connect_timeout=2)
    await store.open()
    yield store, proxy
    await proxy.cut()
    with contextlib.suppress(Exception):
        await store.close()


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out waiting")


async def running_instance(store: PostgresStore) -> InstanceRecord:
    from stepline.store.port import WorkflowSettings

    workflow, _ = await store.save_workflow(
        "acct", "flow", class_name="F", script_name="m", code_hash="h",
        settings=WorkflowSettings(), now=NOW,
    )  # fmt: skip
    record = InstanceRecord(0, workflow.id, "a", workflow.version_id, "queued", "{}", NOW, NOW)
    await store.insert_instances([record], skip_existing=False, now=NOW)
    [(instance, _)] = await store.claim_runnable(NOW, 1, owner="e", lease_until=NOW + 1)
    return instance


def step(pk: int, name: str, seq: int) -> StepRecord:
    return StepRecord(pk, f"do:1:{name}", seq, "do", f"{name}-1", "complete", NOW, output="1")


async def test_an_outage_fails_fast_and_the_reconnect_wakes_subscribers(
    proxied: tuple[PostgresStore, Proxy],
) -> None:
    store, proxy = proxied
    heard: list[Notice] = []
    store.subscribe(heard.append)
    await proxy.cut()
    with pytest.raises(StoreUnavailable):
        await store.get_workflow("acct", "flow")
    assert store.available is False
    assert await store.ping() is False
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.get_instance_by_pk(1)
    assert time.monotonic() - started < 0.5  # known down: no connect attempt to wait for
    assert await store.next_wake_at() is None
    await proxy.start()
    await eventually(lambda: store.available and Notice("wake") in heard)
    assert await store.ping() is True
    assert await store.get_workflow("acct", "flow") is None
    await eventually(lambda: store._listener.listening)
    heard.clear()
    await store.publish(Notice("event", 3))
    await eventually(lambda: Notice("event", 3) in heard)


async def test_a_runners_writes_wait_out_a_short_outage(
    proxied: tuple[PostgresStore, Proxy],
) -> None:
    store, proxy = proxied
    run = await running_instance(store)
    await proxy.cut()
    store.queue_step(run.pk, run.generation, step(run.pk, "queued", 1), now=NOW)
    saving = asyncio.create_task(
        store.save_step(run.pk, run.generation, step(run.pk, "saved", 2), now=NOW)
    )
    await asyncio.sleep(0.5)
    assert not saving.done()
    await proxy.start()
    await asyncio.wait_for(saving, 10)
    steps = await store.load_steps(run.pk)
    assert [s.key for s in steps] == ["do:1:queued", "do:1:saved"]


async def test_a_runners_write_gives_up_after_the_grace(
    proxied: tuple[PostgresStore, Proxy],
) -> None:
    store, proxy = proxied
    run = await running_instance(store)
    store.write_grace_s = 0.3
    await proxy.cut()
    with pytest.raises(StoreUnavailable):
        await store.save_step(run.pk, run.generation, step(run.pk, "s", 1), now=NOW)


async def test_open_raises_store_unavailable_when_nothing_answers() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1)
    with pytest.raises(StoreUnavailable):
        await store.open()


async def test_a_database_that_takes_no_connections_is_an_outage(postgres_database: str) -> None:
    """``ALLOW_CONNECTIONS false`` answers a connection with 55000, not a network error: it is
    an outage all the same (503), and the store carries on once the database takes them."""
    name = urlparse(postgres_database).path.lstrip("/")
    admin = await asyncpg.connect(postgres_url())
    store = PostgresStore(postgres_database, connect_timeout=2)
    await store.open()
    heard: list[Notice] = []
    store.subscribe(heard.append)
    try:
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        for _ in range(3):
            with pytest.raises(StoreUnavailable):
                await store.get_workflow("acct", "flow")
        assert store.available is False
        with pytest.raises(StoreUnavailable):  # a process that starts during it
            await PostgresStore(postgres_database, connect_timeout=2).open()
    finally:
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        await admin.close()
    await eventually(lambda: store.available and Notice("wake") in heard)
    assert await store.get_workflow("acct", "flow") is None
    await store.close()


@pytest.mark.parametrize(
    ("change", "said"),
    [({"path": "/stepline_no_such_database"}, "does not exist"), ({"user": "no_such_role"}, "")],
    ids=["database", "role"],
)
async def test_a_url_naming_a_missing_database_or_role_is_unreachable(change, said) -> None:
    parsed = urlparse(postgres_url())
    if "user" in change:
        netloc = f"{change['user']}@{parsed.hostname}:{parsed.port or 5432}"
        url = urlunparse(parsed._replace(netloc=netloc))
    else:
        url = urlunparse(parsed._replace(path=change["path"]))
    store = PostgresStore(url)
    with pytest.raises(StoreUnavailable, match=f"cannot connect to PostgreSQL at .*{said}"):
        await store.open()
