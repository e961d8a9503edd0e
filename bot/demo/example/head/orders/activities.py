"""Activities of the order service."""

from temporalio import activity


@activity.defn
async def reserve_inventory(order_id: str) -> str:
    return f"reservation-{order_id}"


@activity.defn(name="charge-payment")
async def charge_payment(order_id: str) -> str:
    return f"charge-{order_id}"


@activity.defn
async def ship_order(order_id: str) -> str:
    return f"shipment-{order_id}"


@activity.defn
async def check_fraud(order_id: str) -> bool:
    return True
