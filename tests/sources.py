"""Small, real Temporal sources for CLI tests (the fixture cases live in fixtures/temporal/)."""

from __future__ import annotations

ACTIVITIES = """from temporalio import activity


@activity.defn
async def reserve(order_id: str) -> str:
    return order_id


@activity.defn
async def charge(order_id: str) -> str:
    return order_id


@activity.defn
async def fraud_check(order_id: str) -> bool:
    return True


@activity.defn
async def ship(order_id: str) -> str:
    return order_id
"""

HEADER = """from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from app.activities import charge, fraud_check, reserve, ship

T = timedelta(seconds=30)


@workflow.defn
class OrderWorkflow:
    @workflow.run
    async def run(self, order_id: str) -> str:
"""


def workflow(*steps: str, above: dict[str, str] | None = None) -> str:
    """Return a workflow module whose run method executes `steps` (activity names) in order.

    `above` maps a step to a comment line placed just above its call.
    """
    lines = [HEADER.rstrip("\n")]
    for step in steps:
        if above and step in above:
            lines.append(f"        {above[step]}")
        lines.append(f"        await workflow.execute_activity({step}, order_id, start_to_close_timeout=T)")
    lines.append('        return "done"')
    return "\n".join(lines) + "\n"


def app_files(
    *steps: str, above: dict[str, str] | None = None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Return the files of a small repo: activities, and a workflow running `steps`."""
    files = {
        "app/__init__.py": "",
        "app/activities.py": ACTIVITIES,
        "app/workflows.py": workflow(*steps, above=above),
    }
    files.update(extra or {})
    return files


BASE = app_files("reserve", "charge", "ship")
BREAKING = app_files("reserve", "fraud_check", "charge", "ship")
