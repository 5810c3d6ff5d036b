"""An order: reserve stock, charge the card (with retries), wait a moment, then wait for a
person to approve the shipment.

Try it (scripts/dev prints the full commands):
    stepline workflows trigger order '{"sku": "book", "quantity": 2}' --id order-1
    stepline instances send-event order order-1 --type approved --payload '{"by": "ada"}'
"""

from __future__ import annotations

import random

from stepline import NonRetryableError, WorkflowEntrypoint, WorkflowTimeoutError

PRICES = {"book": 1200, "lamp": 4500, "mug": 800}


class OrderWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        order = event.payload or {}
        sku = order.get("sku", "book")
        quantity = int(order.get("quantity", 1))

        @step.do("reserve stock")
        async def reserve():
            if sku not in PRICES:
                raise NonRetryableError(f"unknown sku {sku!r}")
            return {"sku": sku, "quantity": quantity, "reservation": f"res-{event.instance_id}"}

        @step.do(
            "charge card",
            config={
                "retries": {"limit": 3, "delay": "1 second", "backoff": "exponential"},
                "timeout": "30 seconds",
            },
        )
        async def charge(ctx, reserve):
            # A flaky payment provider: the first attempt often fails; a retry goes through.
            if ctx.attempt == 1 and random.random() < 0.5:
                raise ConnectionError("payment provider timed out")
            return {"charge_id": f"ch_{event.instance_id}", "amount": PRICES[sku] * quantity}

        receipt = await charge()
        await step.sleep("let the bank settle", "2 seconds")
        try:
            approval = await step.wait_for_event("shipment approval", "approved", timeout="1 hour")
        except WorkflowTimeoutError:
            return {"receipt": receipt, "shipped": False, "reason": "nobody approved in time"}
        return {"receipt": receipt, "shipped": True, "approved_by": approval["payload"].get("by")}
