"""A real Temporal worker for the runbook tests: the workflows of one source tree (`app.workflows`),
with activities under the fixtures' names; `ship` waits until a file named after its order id
appears in the release folder, so executions stay open until the test lets them finish.

Run: python runbook_worker.py TREE ADDRESS NAMESPACE TASK_QUEUE RELEASE_DIR [DEPLOYMENT BUILD_ID]
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from pathlib import Path

from temporalio import activity
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import Worker, WorkerDeploymentConfig

BLOCKING = "ship"
NAMES = ("reserve", "charge", "fraud_check", "authorize_payment", "ship")


def _activity(name: str, release: Path) -> object:
    @activity.defn(name=name)
    async def run(order_id: str) -> object:
        if name == BLOCKING:
            while not (release / order_id).exists():
                await asyncio.sleep(0.1)
        return True if name == "fraud_check" else order_id

    return run


async def main(argv: list[str]) -> None:
    tree, address, namespace, task_queue, release = argv[:5]
    sys.path.insert(0, tree)
    module = importlib.import_module("app.workflows")
    workflows = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and hasattr(cls, "__temporal_workflow_definition")
    ]
    deployment = None
    if len(argv) == 7:
        deployment = WorkerDeploymentConfig(
            version=WorkerDeploymentVersion(deployment_name=argv[5], build_id=argv[6]),
            use_worker_versioning=True,
            default_versioning_behavior=VersioningBehavior.PINNED,
        )
    client = await Client.connect(address, namespace=namespace)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=[_activity(n, Path(release)) for n in NAMES],
        deployment_config=deployment,
    )
    print("ready", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
