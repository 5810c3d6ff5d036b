"""The SQLite files deleted or replaced under a running process, and a disk that fills up.

SQLite writes on to the files it opened, so once they are unlinked every commit goes where
nobody can read it after a restart: the store refuses writes from then on (the API answers
503, not 200 for instances that would vanish) and ``/healthz`` says it is unavailable. A
full disk makes ``/healthz`` unavailable until the file takes a write again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stepline import Stepline
from stepline.errors import StoreUnavailable
from stepline.server import health_check
from tests.engine.helpers import finished
from tests.engine.test_create_claims import Held
from tests.workflows.probe import Probe

SCRIPT = "tests.engine.test_create_claims"
ROOT = Path(__file__).resolve().parents[2]


def _database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'stepline.sqlite3'}"


def _remove_all(tmp_path: Path) -> None:
    """``rm stepline.sqlite3*``: the file and everything beside it."""
    for path in tmp_path.glob("stepline.sqlite3*"):
        path.unlink()


def _replace_with_a_copy(tmp_path: Path) -> None:
    """A restore done carelessly: a copy renamed over the file in use."""
    path = tmp_path / "stepline.sqlite3"
    shutil.copy(path, tmp_path / "restored")
    os.replace(tmp_path / "restored", path)


def _remove_the_wal(tmp_path: Path) -> None:
    (tmp_path / "stepline.sqlite3-wal").unlink()


def _remove_the_shm(tmp_path: Path) -> None:
    """Another process that opens the file then writes without this one's WAL index."""
    (tmp_path / "stepline.sqlite3-shm").unlink()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "change", [_remove_all, _replace_with_a_copy, _remove_the_wal, _remove_the_shm]
)
async def test_writes_are_refused_once_the_files_are_gone(tmp_path: Path, change) -> None:
    probe = Probe()
    probe.gate("open").set()
    async with Stepline(_database(tmp_path), account_id="acct", env=probe) as sl:
        flow = await sl.register("held", Held, script_name=SCRIPT)
        before = await flow.create(params="before")
        assert (await finished(before))["status"] == "complete"
        health = health_check(sl)
        assert (await health())["status"] == "ok"

        change(tmp_path)
        assert (await health())["status"] == "unavailable"  # seen before any write fails
        with pytest.raises(StoreUnavailable, match="deleted or replaced while"):
            await flow.create(params="after")
        assert (await health())["status"] == "unavailable"
        with pytest.raises(StoreUnavailable):  # and for good, not only once
            await flow.create(params="later")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("removed", ["all", "wal"])
def test_a_restart_after_the_loss_works_on_what_the_path_holds(tmp_path: Path, removed) -> None:
    """Once the process that lost its files has ended (it leaves their connections open to
    the end, so as not to checkpoint them into whatever the path names then)."""
    lost = _child(_LOSE, _database(tmp_path), removed)
    assert lost.stdout.strip() == "refused", lost.stderr
    restarted = _child(_RESTART, _database(tmp_path))
    assert restarted.stdout.strip() == "complete", restarted.stderr


def _child(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=50, cwd=ROOT
    )


_LOSE = textwrap.dedent(
    """
    import asyncio, glob, os, sys
    from stepline import Stepline
    from stepline.errors import StoreUnavailable
    from tests.engine.test_create_claims import Held

    async def main(database, removed):
        path = database.removeprefix("sqlite:///")
        async with Stepline(database, account_id="acct") as sl:
            flow = await sl.register("held", Held, script_name="tests.engine.test_create_claims")
            await flow.create(params="before")
            for name in glob.glob(path + "*") if removed == "all" else [path + "-wal"]:
                os.unlink(name)
            try:
                await flow.create(params="after")
            except StoreUnavailable:
                print("refused")

    asyncio.run(main(*sys.argv[1:]))
    """
)


_RESTART = textwrap.dedent(
    """
    import asyncio, sys
    from stepline import Stepline
    from tests.engine.helpers import finished
    from tests.engine.test_create_claims import Held
    from tests.workflows.probe import Probe

    async def main(database):
        probe = Probe()
        probe.gate("open").set()
        async with Stepline(database, account_id="acct", env=probe) as again:
            flow = await again.register("held", Held, script_name="tests.engine.test_create_claims")
            print((await finished(await flow.create(params="again")))["status"])

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_the_log_says_where_the_deleted_file_can_still_be_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with Stepline(_database(tmp_path), account_id="acct") as sl:
        flow = await sl.register("held", Held, script_name=SCRIPT)
        _remove_all(tmp_path)
        with pytest.raises(StoreUnavailable) as refused:
            await flow.create(params="after")
    assert str(tmp_path) not in str(refused.value)  # clients see no path of the server's
    [logged] = [r.getMessage() for r in caplog.records if "deleted or replaced" in r.getMessage()]
    assert str(tmp_path / "stepline.sqlite3") in logged
    assert f"/proc/{os.getpid()}/fd/" in logged


_FULL_DISK = textwrap.dedent(
    """
    import asyncio, json, os, resource, signal, sys
    from stepline import Stepline
    from stepline.errors import StoreUnavailable
    from stepline.server import health_check
    from tests.engine.test_create_claims import Held

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead

    async def main(database, folder):
        seen = {}
        async with Stepline(database, account_id="acct", run_engine=False) as sl:
            flow = await sl.register("held", Held, script_name="tests.engine.test_create_claims")
            health = health_check(sl)
            seen["before"] = (await health())["status"]
            largest = max(p.stat().st_size for p in __import__("pathlib").Path(folder).iterdir())
            resource.setrlimit(resource.RLIMIT_FSIZE, (largest, resource.RLIM_INFINITY))
            try:
                await flow.create_batch([{"params": {"pad": "x" * 50_000}}] * 20)
                seen["create"] = "accepted"
            except StoreUnavailable as refused:
                seen["create"] = str(refused)
            seen["full"] = (await health())["status"]
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
            seen["freed"] = (await health())["status"]
        print(json.dumps(seen))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


@pytest.mark.timeout(60)
def test_healthz_is_unavailable_while_the_disk_is_full(tmp_path: Path) -> None:
    """A full disk, short of filling one: the process may not grow any file (``RLIMIT_FSIZE``)."""
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, _database(tmp_path), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] == "ok"
    assert seen["create"] != "accepted"
    assert seen["full"] == "unavailable"
    assert seen["freed"] == "ok"
