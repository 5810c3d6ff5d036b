"""A fan-out: fetch three sources concurrently, then combine them in one step."""

from __future__ import annotations

import asyncio

from stepline import WorkflowEntrypoint


class FanOutWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        city = (event.payload or {}).get("city", "Lisbon")

        @step.do("weather")
        async def weather():
            await asyncio.sleep(0.2)
            return {"city": city, "forecast": "sunny"}

        @step.do("events")
        async def events():
            await asyncio.sleep(0.2)
            return [f"{city} jazz night", f"{city} food market"]

        @step.do("hotels")
        async def hotels():
            await asyncio.sleep(0.2)
            return {"cheapest": 79, "currency": "EUR"}

        @step.do("itinerary", concurrent=True)
        async def itinerary(weather, events, hotels):
            return {
                "city": city,
                "weather": weather["forecast"],
                "plans": events,
                "budget": hotels["cheapest"],
            }

        return await itinerary()
