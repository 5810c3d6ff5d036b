"""How SQLite answers the reads whose cost would grow with a workflow's history: a list of
the instances in one status, and a terminate-all job's pass, search that status's instances
alone, in the order asked for, however many instances the workflow has in other statuses."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from stepline.store import sqlite_queries as q
from stepline.store.port import InstanceFilter
from stepline.store.sqlite import SqliteStore
from stepline.store.sqlite_instances import _filter_sql


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    path = tmp_path / "plans.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    return path


def plan(path: Path, sql: str, params: list[object]) -> str:
    with sqlite3.connect(path) as conn:
        return "\n".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


@pytest.mark.parametrize("descending", [True, False])
def test_a_list_by_status_reads_that_status_alone_in_order(database: Path, descending: bool):
    where = InstanceFilter(status="terminated", live_at=0)
    clauses, params = _filter_sql("wf", where)
    sql = q.LIST_INSTANCES.format(
        where=" AND ".join(clauses), order="DESC" if descending else "ASC"
    )
    found = plan(database, sql, [*params, 25, 0])
    assert "USING INDEX instances_by_status (workflow_id=? AND status=?)" in found
    assert "TEMP B-TREE" not in found  # no sort: the index gives the list's order


def test_counting_by_status_reads_the_index_alone(database: Path):
    clauses, params = _filter_sql("wf", InstanceFilter(status="complete", live_at=0))
    found = plan(database, q.COUNT_INSTANCES.format(where=" AND ".join(clauses)), params)
    assert "USING COVERING INDEX instances_by_status (workflow_id=? AND status=?)" in found


def test_a_terminate_all_pass_reads_the_statuses_it_ends(database: Path):
    sql = q.SELECT_PKS_BY_STATUS.format(marks="?, ?")
    found = plan(database, sql, ["wf", "running", "waiting", 0, 100])
    assert "USING COVERING INDEX instances_by_status (workflow_id=? AND status=?" in found
