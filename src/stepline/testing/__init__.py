"""What users import in their own tests.

>>> from stepline.testing import StepMocks, TestClock, wait_for_status
>>> clock, mocks = TestClock(), StepMocks()
>>> async with Stepline("sqlite:///tmp/t.sqlite3", clock=clock, hooks=mocks) as stepline:
...     instance = await (await stepline.register("checkout", Checkout)).create()
...     await wait_for_status(instance, "complete")
"""

from stepline.testing.clock import TestClock
from stepline.testing.mocks import StepMocks
from stepline.testing.waiting import wait_for_status

__all__ = ["StepMocks", "TestClock", "wait_for_status"]
