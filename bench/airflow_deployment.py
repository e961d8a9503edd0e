"""Benchmark: what reading the deployment's pinning and last runs from the exports adds to a check.

Writes a REST export of RUNS DagRuns of TASKS task instances each (the v2 shape `export airflow`
writes, `dag_versions` and `bundle_version` included), then times:

- baseline: `json.loads` of the file — what the replay pays to read it anyway;
- pinning + last runs: `read_documents`, `exported_versions` and `last_runs` as the Airflow engine
  runs them before loading the DAGs (a second read of the same file);
- the `airflow.cfg` parse of a two-bundle config, per call.

Prints seconds and the ratio to the baseline; no target, figures only.

    python bench/airflow_deployment.py                  # 5,000 runs x 30 task instances
    python bench/airflow_deployment.py --runs 20000 --tasks 30
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.engines.airflow.deployment import (  # noqa: E402
    exported_versions,
    last_runs,
    parse_cfg,
    read_documents,
)

CFG = """[dag_processor]
dag_bundle_config_list = [
    {"name": "repo", "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
     "kwargs": {"subdir": "dags/versioned", "tracking_ref": "main"}},
    {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}}
  ]
disable_bundle_versioning = False
"""


def _export(runs: int, tasks: int) -> dict[str, object]:
    dag_runs, instances = [], []
    for i in range(runs):
        dag_id = f"dag_{i % 50}"
        stamp = f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00Z"
        dag_runs.append(
            {
                "dag_id": dag_id,
                "dag_run_id": f"scheduled__{i}",
                "state": "running" if i % 10 else "success",
                "run_type": "scheduled",
                "data_interval_start": stamp,
                "data_interval_end": stamp,
                "bundle_version": "4f2a9c1" if i % 2 else None,
                "dag_versions": [{"version_number": 1, "bundle_version": "4f2a9c1" if i % 2 else None}],
            }
        )
        for t in range(tasks):
            instances.append(
                {
                    "dag_id": dag_id,
                    "dag_run_id": f"scheduled__{i}",
                    "task_id": f"task_{t}",
                    "map_index": -1,
                    "state": "success",
                    "dag_version": {"version_number": 1, "bundle_version": "4f2a9c1" if i % 2 else None},
                }
            )
    return {"dag_runs": dag_runs, "task_instances": instances}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--tasks", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-airflow-deployment-") as tmp:
        path = Path(tmp) / "runs.json"
        path.write_text(json.dumps(_export(args.runs, args.tasks)))
        size = path.stat().st_size
        began = time.perf_counter()
        json.loads(path.read_text())
        baseline = time.perf_counter() - began
        began = time.perf_counter()
        documents = read_documents([tmp], 1 << 40)
        versions = exported_versions(documents)
        last = last_runs(documents)
        ours = time.perf_counter() - began
        began = time.perf_counter()
        for _ in range(1000):
            parse_cfg("airflow.cfg", CFG)
        cfg = (time.perf_counter() - began) / 1000
    print(f"export: {args.runs:,} runs x {args.tasks} task instances, {size / 1e6:.1f} MB")
    print(f"baseline json.loads (the replay's own read): {baseline:.3f} s")
    print(f"pinning + last runs from the export:        {ours:.3f} s  ({ours / baseline:.2f}x baseline)")
    print(f"  DAGs with a pinning answer: {len(versions)}, with a last run: {len(last)}")
    print(f"airflow.cfg parse (two bundles): {cfg * 1e3:.3f} ms per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
