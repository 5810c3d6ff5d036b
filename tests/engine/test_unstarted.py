"""Two mistakes of a newcomer said in words of theirs: a Stepline used before it is started
(the README's examples start it with ``async with``), and a ``run`` written without ``async``."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.errors import NotStarted
from tests.conftest import store_factory
from tests.engine.helpers import finished


class Plain(WorkflowEntrypoint):
    async def run(self, event, step):
        return 1


async def test_a_stepline_used_before_its_start_says_to_start_it(store_kind: str, tmp_path: Path):
    # It was "the SQLite writer is stopped", "no such table: workflows" (from a file the
    # read had made) or "PostgreSQL is unreachable; retry later".
    stepline = Stepline(store_factory(store_kind, tmp_path))

    with pytest.raises(NotStarted, match=r"async with Stepline\(\.\.\.\) as stepline"):
        await stepline.register("plain", Plain)
    with pytest.raises(NotStarted):
        await stepline.workflow("plain").create()
    with pytest.raises(NotStarted):
        await stepline.client.list_workflows(stepline.account_id)
    assert not (tmp_path / "stepline.sqlite3").exists()

    async with stepline:  # and started, it works
        await stepline.register("plain", Plain)
        assert (await stepline.workflow("plain").create()).id


class SyncRun(WorkflowEntrypoint):
    def run(self, event, step):  # the mistake under test: no async
        return 42


async def test_a_run_written_without_async_fails_its_instance_saying_so(stepline: Stepline):
    # It failed with "object int can't be used in 'await' expression".
    instance = await (await stepline.register("sync-run", SyncRun)).create()
    view = await finished(instance)

    assert view["status"] == "errored"
    assert view["error"] == {
        "name": "TypeError",
        "message": "SyncRun.run returned int, not a coroutine: define it as "
        "async def run(self, event, step)",
    }
