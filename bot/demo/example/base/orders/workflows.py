"""The order workflow: reserve, charge, wait for the warehouse, ship."""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from orders.activities import charge_payment, reserve_inventory, ship_order

STEP = timedelta(minutes=5)


@workflow.defn
class OrderWorkflow:
    def __init__(self) -> None:
        self.packed = False

    @workflow.signal
    def packed_by_warehouse(self) -> None:
        self.packed = True

    @workflow.query
    def status(self) -> str:
        return "packed" if self.packed else "waiting"

    @workflow.run
    async def run(self, order_id: str) -> str:
        await workflow.execute_activity(reserve_inventory, order_id, start_to_close_timeout=STEP)
        await workflow.execute_activity(charge_payment, order_id, start_to_close_timeout=STEP)
        await workflow.wait_condition(lambda: self.packed)
        return await workflow.execute_activity(ship_order, order_id, start_to_close_timeout=STEP)
