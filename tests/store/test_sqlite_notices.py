"""A process without an engine on a SQLite file (an API served with ``--no-engine``) tells the
file's engine, in another process, what it changed: a create, an event, a pause, a resume,
a terminate. Each test runs the two as two Steplines on one file, each with its own store, as
two processes would; the engine acts within a second, not at its next timer (an hour away,
or never)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.errors import ConfigError
from stepline.store.port import Notice, notice_from_object
from stepline.store.sqlite_notices import NoticeInbox, NoticeSender, socket_path
from stepline.testing import wait_for_status
from tests.engine.test_create_claims import Held
from tests.engine.test_lifecycle import Blocking
from tests.workflows.probe import Probe

SCRIPT = "tests.store.test_sqlite_notices"
HELD_SCRIPT = "tests.engine.test_create_claims"
BLOCKING_SCRIPT = "tests.engine.test_lifecycle"


class Approval(WorkflowEntrypoint):
    """Waits an hour for an "approved" event; returns its payload."""

    async def run(self, event, step):
        approval = await step.wait_for_event("approval", "approved", timeout="1 hour")
        return approval["payload"]


class Quick(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.do("one", lambda: event.payload)


async def _pair(database: Path, probe: Probe) -> tuple[Stepline, Stepline]:
    """The engine's process, then an API-only process, on ``database``, both started."""
    url = f"sqlite:///{database}"
    engine = Stepline(url, account_id="acct", env=probe, stop_grace=200)
    await engine.start()
    api = Stepline(url, account_id="acct", run_engine=False)
    await api.start()
    for stepline in (engine, api):
        await stepline.register("approval", Approval, script_name=SCRIPT)
        await stepline.register("quick", Quick, script_name=SCRIPT)
        await stepline.register("held", Held, script_name=HELD_SCRIPT)
        await stepline.register("blocking", Blocking, script_name=BLOCKING_SCRIPT)
    return engine, api


@pytest.fixture
async def pair(tmp_path: Path, probe: Probe) -> AsyncIterator[tuple[Stepline, Stepline]]:
    engine, api = await _pair(tmp_path / "stepline.sqlite3", probe)
    yield engine, api
    await api.stop()
    await engine.stop()


async def test_the_engine_runs_what_the_api_process_creates(
    pair: tuple[Stepline, Stepline],
) -> None:
    _, api = pair
    instance = await api.workflow("quick").create(params="made elsewhere")
    view = await wait_for_status(instance, "complete", timeout=5)
    assert view["output"] == "made elsewhere"
    batch = await api.workflow("quick").create_batch([{"params": i} for i in range(20)])
    for handle in batch:
        assert (await wait_for_status(handle, "complete", timeout=5))["output"] is not None


async def test_an_event_sent_from_the_api_process_resumes_a_parked_instance(
    pair: tuple[Stepline, Stepline],
) -> None:
    _, api = pair
    instance = await api.workflow("approval").create()
    await wait_for_status(instance, "waiting", timeout=5)
    await instance.send_event("approved", {"by": "ops"})
    view = await wait_for_status(instance, "complete", timeout=5)
    assert view["output"] == {"by": "ops"}


async def test_pause_resume_and_terminate_from_the_api_process_reach_the_runner(
    pair: tuple[Stepline, Stepline], probe: Probe
) -> None:
    engine, api = pair
    paused = await api.workflow("blocking").create()
    await probe.wait_for("hold")
    await paused.pause()  # "hold" is executing in the engine: it finishes, then the run parks
    probe.gate("release").set()
    await wait_for_status(paused, "paused", timeout=5)
    assert probe.calls["after"] == 0
    await paused.resume()
    assert (await wait_for_status(paused, "complete", timeout=5))["output"] == "after"

    stopped = await api.workflow("held").create(params="stopped")
    await probe.wait_for("entered")
    workflow = await engine.store.get_workflow("acct", "held")
    assert workflow is not None
    row = await engine.store.get_instance(workflow.id, stopped.id)
    assert row is not None and engine.engine.runner_of(row.pk) is not None
    await stopped.terminate()
    await wait_for_status(stopped, "terminated", timeout=5)
    for _ in range(500):  # the runner is cancelled in the engine's process, not left running
        if engine.engine.runner_of(row.pk) is None:
            break
        await asyncio.sleep(0.01)
    assert engine.engine.runner_of(row.pk) is None


async def test_a_notice_without_an_engine_is_dropped(tmp_path: Path) -> None:
    database = tmp_path / "stepline.sqlite3"
    async with Stepline(f"sqlite:///{database}", account_id="acct", run_engine=False) as api:
        await api.register("quick", Quick, script_name=SCRIPT)
        instance = await api.workflow("quick").create(params=1)
        assert (await instance.status())["status"] == "queued"
    assert not socket_path(database).exists()
    async with Stepline(f"sqlite:///{database}", account_id="acct") as engine:
        await engine.register("quick", Quick, script_name=SCRIPT)
        handle = await engine.workflow("quick").get(instance.id)
        assert (await wait_for_status(handle, "complete", timeout=5))["output"] == 1
    assert not socket_path(database).exists()  # removed when the engine stopped


async def test_a_database_path_too_long_for_a_socket_uses_a_folder_of_the_users(
    tmp_path: Path, probe: Probe
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    database = deep / "stepline.sqlite3"
    path = socket_path(database)
    assert path.parent.name == f"stepline-{os.getuid()}"
    engine, api = await _pair(database, probe)
    try:
        assert path.exists()
        assert path.parent.stat().st_mode & 0o777 == 0o700
        instance = await api.workflow("quick").create(params="far")
        assert (await wait_for_status(instance, "complete", timeout=5))["output"] == "far"
    finally:
        await api.stop()
        await engine.stop()


@pytest.mark.parametrize("squatter", ["file", "folder of another user"])
async def test_a_socket_folder_that_is_not_the_users_refuses_the_start_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, squatter: str
) -> None:
    if squatter != "file" and os.getuid() != 0:
        pytest.skip("making a folder of another user's takes root")
    short = Path(tempfile.mkdtemp(prefix="sl-", dir="/tmp"))  # a socket's path is short
    request.addfinalizer(lambda: shutil.rmtree(short))
    monkeypatch.setattr(tempfile, "tempdir", str(short))
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    database = deep / "stepline.sqlite3"
    folder = socket_path(database).parent
    assert folder.parent == short
    if squatter == "file":
        folder.write_text("")
    else:
        folder.mkdir(mode=0o777)
        os.chown(folder, 65534, 65534)
    engine = Stepline(f"sqlite:///{database}", account_id="acct")
    with pytest.raises(ConfigError) as refused:
        await engine.start()
    message = str(refused.value)
    assert "\n" not in message
    assert f"notice socket goes in {folder}" in message
    assert "not this user's" in message and "shorter path" in message
    # Nothing stays held: with the path cleared, an engine starts on the same file.
    if folder.is_dir():
        folder.rmdir()
    else:
        folder.unlink()
    again = Stepline(f"sqlite:///{database}", account_id="acct")
    await again.start()
    try:
        assert socket_path(database).exists()
    finally:
        await again.stop()


async def test_a_malformed_datagram_is_ignored(
    pair: tuple[Stepline, Stepline], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, api = pair
    path = socket_path(tmp_path / "stepline.sqlite3")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stray:
        stray.sendto(b"not a notice", os.fspath(path))
        stray.sendto(b'{"no": "kind"}', os.fspath(path))
    instance = await api.workflow("quick").create(params="after")
    assert (await wait_for_status(instance, "complete", timeout=5))["output"] == "after"
    ignored = [r for r in caplog.records if "ignoring a malformed notice" in r.getMessage()]
    assert len(ignored) == 2


async def test_a_burst_of_pauses_reaches_every_runner(
    pair: tuple[Stepline, Stepline], probe: Probe
) -> None:
    # Thirty pauses commit together and send their notices in one go: more than a datagram
    # socket queues by default (10 on Linux) before the engine reads. None may be lost, or
    # its runner runs on to the end instead of parking as paused.
    _, api = pair
    handles = await api.workflow("blocking").create_batch([{} for _ in range(30)])
    await probe.wait_for("hold", 30)
    await asyncio.gather(*(h.pause() for h in handles))
    probe.gate("release").set()
    for handle in handles:
        await wait_for_status(handle, "paused", timeout=5)
    assert probe.calls["after"] == 0


async def _read_notices(engine_side: socket.socket, want: int) -> list[Notice]:
    """Read the engine's socket, as its loop would, until ``want`` notices came (or 5 s)."""
    received: list[Notice] = []
    for _ in range(500):
        with contextlib.suppress(BlockingIOError):
            while True:
                raw = json.loads(engine_side.recv(65_536))
                received.extend(notice_from_object(item) for item in raw)
        if len(received) >= want:
            break
        await asyncio.sleep(0.01)
    return received


async def test_notices_wait_while_the_engines_queue_is_full_and_arrive_in_order(
    tmp_path: Path,
) -> None:
    # The engine's socket, not read for a while: its queue fills after a few datagrams.
    path = tmp_path / "engine.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as engine_side:
        engine_side.bind(os.fspath(path))
        engine_side.setblocking(False)
        sender = NoticeSender(path)
        for pk in range(1, 41):  # one notice a loop turn: forty datagrams
            sender.send(Notice("pause", pk, "engine-a"))
            await asyncio.sleep(0)
        sender.send(Notice("wake"))
        sender.send(Notice("wake"))  # a second wake adds nothing
        received = await _read_notices(engine_side, 41)
        sender.close()
    assert [n.pk for n in received] == [*range(1, 41), 0]
    assert received[-1].kind == "wake"


async def test_a_closing_sender_hands_over_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "engine.sock"
    delivered: list[Notice] = []
    inbox = NoticeInbox(path, delivered.append)
    inbox.open(asyncio.get_running_loop())
    try:
        sender = NoticeSender(path)
        for pk in range(1, 6):
            sender.send(Notice("stop", pk, None, 2))
        sender.close()  # before the end of the loop turn that would have sent them
        await asyncio.sleep(0.05)
    finally:
        inbox.close()
    assert delivered == [Notice("stop", pk, None, 2) for pk in range(1, 6)]


async def test_a_wake_after_a_burst_sent_in_part_is_kept(tmp_path: Path) -> None:
    # The engine's queue has room for one datagram; the burst takes two (over 64 KB), so its
    # second half waits. A wake that comes meanwhile is the only one still to be sent.
    path = tmp_path / "engine.sock"
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as engine_side,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as filler,
    ):
        engine_side.bind(os.fspath(path))
        engine_side.setblocking(False)
        filler.setblocking(False)
        fillers = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                filler.sendto(b"[]", os.fspath(path))
                fillers += 1
        engine_side.recv(65_536)
        sender = NoticeSender(path)
        sender.send(Notice("wake"))
        for pk in range(1, 2001):
            sender.send(Notice("pause", pk, "engine-a"))
        await asyncio.sleep(0)  # the burst's first datagram goes; the rest waits
        sender.send(Notice("wake"))
        received = await _read_notices(engine_side, 2002)
        sender.close()
    assert fillers > 0
    assert [n.kind for n in received] == ["wake", *["pause"] * 2000, "wake"]


@pytest.mark.parametrize("mode", [0o660, 0o600, 0o644], ids=["group", "owner", "others-read"])
async def test_the_socket_lets_in_whoever_may_write_the_database(tmp_path: Path, mode: int) -> None:
    database = tmp_path / "stepline.sqlite3"
    async with Stepline(f"sqlite:///{database}", account_id="acct", run_engine=False):
        pass  # makes the file
    database.chmod(mode)
    async with Stepline(f"sqlite:///{database}", account_id="acct"):
        assert socket_path(database).stat().st_mode & 0o777 == mode
