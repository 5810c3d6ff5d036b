"""One engine per SQLite file: a second engine is refused, it does not take the first's
running instances from under it; the file is free again once the engine stops or its process
dies; a process that runs no engine (an API-only server) needs no lock."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from stepline import Stepline
from stepline.errors import EngineAlreadyRunning
from tests.engine.helpers import finished
from tests.engine.test_create_claims import Held
from tests.workflows.probe import Probe

SCRIPT = "tests.engine.test_create_claims"


def _database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'stepline.sqlite3'}"


async def test_a_second_engine_is_refused_and_the_first_runs_on(tmp_path: Path) -> None:
    probe = Probe()
    async with Stepline(_database(tmp_path), account_id="acct", env=probe) as first:
        flow = await first.register("held", Held, script_name=SCRIPT)
        instance = await flow.create(params="held")
        await probe.wait_for("entered")  # its attempt is running in the first engine

        threads_before = set(threading.enumerate())
        second = Stepline(_database(tmp_path), account_id="acct", env=probe)
        with pytest.raises(EngineAlreadyRunning) as refused:
            await second.start()
        message = str(refused.value)
        assert f"process {os.getpid()}, engine {first.engine.owner}" in message
        assert str(tmp_path / "stepline.sqlite3") in message
        assert "PostgreSQL" in message
        assert not second.engine_running
        assert set(threading.enumerate()) <= threads_before  # its store was closed again

        probe.gate("open").set()
        view = await finished(instance)
    assert view["status"] == "complete"
    assert view["output"] == "held"
    assert probe.calls["entered"] == 1  # not run again by the refused engine
    [attempt] = view["steps"][0]["attempts"]  # and no attempt cut off by a takeover
    assert attempt["success"] is True


async def test_the_file_is_free_again_once_its_engine_stops(tmp_path: Path) -> None:
    async with Stepline(_database(tmp_path), account_id="acct"):
        pass
    async with Stepline(_database(tmp_path), account_id="acct") as again:
        assert again.engine_running
    # a store closed without its engine stopped lets go too
    third = Stepline(_database(tmp_path), account_id="acct")
    await third.start()
    await third.store.close()
    async with Stepline(_database(tmp_path), account_id="acct") as fourth:
        assert fourth.engine_running


async def test_a_process_without_an_engine_takes_no_lock(tmp_path: Path) -> None:
    api = Stepline(_database(tmp_path), account_id="acct", run_engine=False)
    async with api, Stepline(_database(tmp_path), account_id="acct") as engine:
        assert engine.engine_running
        async with Stepline(_database(tmp_path), account_id="acct", run_engine=False):
            pass  # and an API-only process starts beside a running engine


def _engine_process(tmp_path: Path) -> subprocess.Popen[str]:
    """A process running an engine on the test's file, once it says it is running."""
    child = textwrap.dedent(
        f"""
        import asyncio
        from stepline import Stepline

        async def main():
            async with Stepline({_database(tmp_path)!r}, account_id="acct"):
                print("running", flush=True)
                await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "running"
    return process


def _kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


@pytest.mark.timeout(60)
async def test_a_killed_engine_process_leaves_the_file_free(tmp_path: Path) -> None:
    process = _engine_process(tmp_path)
    try:
        with pytest.raises(EngineAlreadyRunning, match=f"process {process.pid},"):
            await Stepline(_database(tmp_path), account_id="acct").start()
    finally:
        _kill(process)
    async with Stepline(_database(tmp_path), account_id="acct") as after:
        assert after.engine_running


@pytest.mark.timeout(60)
def test_stepline_worker_on_a_file_with_an_engine_says_so(tmp_path: Path) -> None:
    holder = _engine_process(tmp_path)
    try:
        command = [sys.executable, "-c", "from stepline.cli.main import main; main()", "worker"]
        command += ["--database", _database(tmp_path), "--account-id", "acct"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    finally:
        _kill(holder)
    assert done.returncode == 1
    assert "another Stepline engine" in done.stderr
    assert f"process {holder.pid}," in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.timeout(60)
async def test_deleting_the_lock_file_does_not_let_a_second_engine_in(tmp_path: Path) -> None:
    """The refusal names a file, and the first thing many try is to delete it."""
    process = _engine_process(tmp_path)
    try:
        (tmp_path / "stepline.sqlite3-engine.lock").unlink()
        with pytest.raises(EngineAlreadyRunning, match="another Stepline engine"):
            await Stepline(_database(tmp_path), account_id="acct").start()
    finally:
        _kill(process)
    async with Stepline(_database(tmp_path), account_id="acct") as after:
        assert after.engine_running


async def test_a_second_engine_in_the_process_is_refused_without_the_lock_file(
    tmp_path: Path,
) -> None:
    async with Stepline(_database(tmp_path), account_id="acct"):
        (tmp_path / "stepline.sqlite3-engine.lock").unlink()
        with pytest.raises(EngineAlreadyRunning):
            await Stepline(_database(tmp_path), account_id="acct").start()
    async with Stepline(_database(tmp_path), account_id="acct") as after:
        assert after.engine_running


async def test_a_refused_engine_leaves_the_running_engines_sqlite_locks_alone(
    tmp_path: Path,
) -> None:
    """Closing a descriptor of the database file would drop every POSIX lock this process
    holds on it, SQLite's too: the running engine's connections must keep the file's shared
    lock, or another process could take it exclusively (and delete the WAL they use)."""
    probe = Probe()
    async with Stepline(_database(tmp_path), account_id="acct", env=probe) as first:
        flow = await first.register("held", Held, script_name=SCRIPT)
        refused = Stepline(_database(tmp_path), account_id="acct")
        with pytest.raises(EngineAlreadyRunning):
            await refused.start()
        other = await asyncio.to_thread(  # another process: SQLite's in-process bookkeeping
            subprocess.run,  # would refuse this one whatever the system's locks
            [sys.executable, "-c", _TAKE_EXCLUSIVELY, str(tmp_path / "stepline.sqlite3")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "database is locked" in other.stderr, other
        instance = await flow.create(params="after")  # and the engine writes on
        probe.gate("open").set()
        assert (await finished(instance))["status"] == "complete"


_TAKE_EXCLUSIVELY = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=0)
conn.execute("PRAGMA locking_mode = EXCLUSIVE")
conn.execute("BEGIN EXCLUSIVE")
"""
