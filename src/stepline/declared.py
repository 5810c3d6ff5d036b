"""What a process takes from its settings before it runs: its account, the workflows that
``stepline.toml`` declares (for ``stepline serve`` and ``stepline worker`` alike), and what a
request may have the server import."""

from __future__ import annotations

import logging
import os

from stepline.app import DEFAULT_ACCOUNT, Stepline
from stepline.config import ProjectConfig
from stepline.engine.import_scope import ImportScope
from stepline.errors import ConfigError, InvalidRequest, WorkflowClassNotFound
from stepline.store.port import WorkflowSettings

__all__ = ["import_scope", "register_declared", "resolve_account"]

log = logging.getLogger("stepline.server")


def resolve_account(account_id: str | None) -> str:
    """The flag's account, else ``STEPLINE_ACCOUNT_ID``, else ``local``."""
    return account_id or os.environ.get("STEPLINE_ACCOUNT_ID") or DEFAULT_ACCOUNT


def import_scope(project: ProjectConfig | None) -> ImportScope:
    """What a REST PUT may import: the config's ``modules``, the packages of the workflows it
    declares and the modules in its folder; without a config, nothing."""
    if project is None:
        return ImportScope()
    packages = {*project.modules, *(w.script_name.split(".")[0] for w in project.workflows)}
    return ImportScope.of(packages, [project.folder])


async def register_declared(stepline: Stepline, project: ProjectConfig, account_id: str) -> None:
    """Register every workflow of ``stepline.toml``; unchanged code keeps its version."""
    for declared in project.workflows:
        try:
            cls = stepline.classes.load(declared.script_name, declared.class_name)
        except WorkflowClassNotFound as exc:  # the file's mistake, not a request's: say where
            raise ConfigError(
                f"{project.path}: workflow {declared.name!r}: {exc.detail or exc}"
            ) from exc
        try:
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
        except InvalidRequest as exc:  # the account's 100 schedules, counted in the store
            raise ConfigError(
                f"{project.path}: workflow {declared.name!r}: {exc.detail or exc}"
            ) from exc
        log.info(
            "workflow %s -> %s.%s (version %s)",
            workflow.name,
            declared.script_name,
            declared.class_name,
            version.id,
        )
