"""Benchmark: synthesized in-flight Cadence histories for a PR touching 5 workflows.

Copies the base and head of 5 Cadence fixture cases into one tree each (a package per case, the
workflow type renamed per case so the 5 share one process), then times, in this interpreter:

- synthesis: bot/engines/cadence/synth_driver.py on the 5 base workflows, one process, the
  default budget (8 executions, 64 histories, 1000 events per workflow);
- replay: every synthesized history on the head with bot/engines/cadence/runner.py, one process.

Prints wall seconds, histories per workflow and how many fail on head; no target, figures only.

    python bench/cadence_synthesis.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "fixtures" / "cadence"
ENGINE = ROOT / "bot" / "engines" / "cadence"
PICKED = [
    "activities_reordered",
    "activity_removed",
    "activity_inserted_mid_sequence",
    "timer_added",
    "signal_handler_removed",
]


def _tree(root: Path, side: str) -> list[dict[str, object]]:
    workflows = []
    for n, case in enumerate(PICKED, 1):
        source = (CASES / case / side / "orders" / "workflows.py").read_text()
        package = root / f"case{n}"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "workflows.py").write_text(
            source.replace('name="OrderWorkflow"', f'name="OrderWorkflow{n}"')
        )
        workflows.append(
            {
                "type": f"OrderWorkflow{n}",
                "modules": [f"case{n}.workflows"],
                "class": "OrderWorkflow",
                "file": str(package / "workflows.py"),
            }
        )
    return workflows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base, head, out = Path(tmp) / "base", Path(tmp) / "head", Path(tmp) / "out"
        config = {"paths": [str(base)], "workflows": _tree(base, "base"), "out": str(out), "address": None}
        (Path(tmp) / "config.json").write_text(json.dumps(config))
        started = time.perf_counter()
        run = subprocess.run(
            [sys.executable, str(ENGINE / "synth_driver.py"), str(Path(tmp) / "config.json")],
            cwd=base,
            capture_output=True,
            text=True,
            check=True,
        )
        synthesis = time.perf_counter() - started
        lines = [json.loads(line) for line in run.stdout.splitlines()]
        files = [line for line in lines if line["kind"] == "history"]
        head_workflows = _tree(head, "head")
        jobs = [
            json.dumps(
                {
                    "paths": [str(head)],
                    "workflows": head_workflows,
                    "replay": [w["type"] for w in head_workflows],
                }
            )
        ]
        jobs += [json.dumps({"i": i, "path": h["file"], "name": h["file"]}) for i, h in enumerate(files)]
        started = time.perf_counter()
        replayed = subprocess.run(
            [sys.executable, str(ENGINE / "runner.py")],
            input="\n".join(jobs) + "\n",
            capture_output=True,
            text=True,
            check=True,
        )
        replay = time.perf_counter() - started
        results = [json.loads(line) for line in replayed.stdout.splitlines()]
        failing = sum(1 for r in results if r["kind"] == "result" and r["outcome"] != "ok")
    print(f"synthesis, 5 base workflows, one process: {synthesis:6.2f} s")
    for line in lines:
        if line["kind"] == "reached":
            count = sum(1 for h in files if h["type"] == line["type"])
            print(f"  {line['type']:16} {line['executions']} executions, {count:2} histories")
        if line["kind"] == "error":
            print(f"  error: {line['message']}")
    print(f"replay of {len(files)} histories on head, one process: {replay:6.2f} s ({failing} fail on head)")
    print(f"total: {synthesis + replay:6.2f} s")


if __name__ == "__main__":
    main()
