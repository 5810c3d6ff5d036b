"""What workflow code touches: the entrypoint class, the event and the step object."""

from stepline.authoring.entrypoint import WorkflowEntrypoint, WorkflowEvent
from stepline.authoring.step import StepContext, StepFunction, StepRuntime, WorkflowStep

__all__ = [
    "StepContext",
    "StepFunction",
    "StepRuntime",
    "WorkflowEntrypoint",
    "WorkflowEvent",
    "WorkflowStep",
]
