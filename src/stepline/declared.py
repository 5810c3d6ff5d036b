"""What a process takes from its settings before it runs: its account, and the workflows
that ``stepline.toml`` declares (for ``stepline serve`` and ``stepline worker`` alike)."""

from __future__ import annotations

import logging
import os

from stepline.app import DEFAULT_ACCOUNT, Stepline
from stepline.config import ProjectConfig
from stepline.store.port import WorkflowSettings

__all__ = ["register_declared", "resolve_account"]

log = logging.getLogger("stepline.server")


def resolve_account(account_id: str | None) -> str:
    """The flag's account, else ``STEPLINE_ACCOUNT_ID``, else ``local``."""
    return account_id or os.environ.get("STEPLINE_ACCOUNT_ID") or DEFAULT_ACCOUNT


async def register_declared(stepline: Stepline, project: ProjectConfig, account_id: str) -> None:
    """Register every workflow of ``stepline.toml``; unchanged code keeps its version."""
    for declared in project.workflows:
        cls = stepline.classes.load(declared.script_name, declared.class_name)
        workflow, version = await stepline.control.register(
            account_id,
            declared.name,
            cls,
            WorkflowSettings(
                step_limit=declared.step_limit,
                success_retention_ms=declared.success_retention_ms,
                error_retention_ms=declared.error_retention_ms,
                concurrency_limit=declared.concurrency_limit,
            ),
            script_name=declared.script_name,
            schedules=declared.schedules,
        )
        log.info(
            "workflow %s -> %s.%s (version %s)",
            workflow.name,
            declared.script_name,
            declared.class_name,
            version.id,
        )
