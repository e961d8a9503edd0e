"""Benchmark: Cadence replay throughput (the SDK's decision engine, through the runner's adapter).

Runs a workflow of 8 activities and 2 timers on cadence-python-client's decision engine
(tests/cadence_recorder.py plays the server), writes COUNT histories in the CLI's Thrift-JSON
shape (half of them still open), then times, in this process:

- parsing: Thrift JSON → the SDK's protobuf events (`parse` of the runner) for every file,
- replaying: `Adapter.replay` of every parsed history against the same code (`ok`), and against
  a head that inserts an activity (`nondeterminism`),

and finally the whole `inflight-guard check --histories` (materialize head, start runners, replay
every file) as a user runs it. Prints histories per second and the split; no target, figures only.

    python bench/cadence_replay.py               # 500 histories
    python bench/cadence_replay.py --count 2000
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cadence_recorder import record, write  # noqa: E402

STEPS = "\n".join(
    f'        out += await workflow.execute_activity("step{i}", str, order, schedule_to_close_timeout=T)'
    + ("\n        await workflow.sleep(timedelta(minutes=5))" if i in (3, 6) else "")
    for i in range(8)
)
BASE = f"""from datetime import timedelta

from cadence import workflow
from cadence.worker import Registry

reg = Registry()
T = timedelta(minutes=1)


@reg.workflow(name="OrderWorkflow")
class OrderWorkflow:
    @workflow.run
    async def run(self, order: str) -> str:
        out = ""
{STEPS}
        return out
"""
HEAD = BASE.replace(
    '        out = ""\n', '        out = ""\n        await workflow.execute_activity("audit", str, order)\n'
)


def load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    runner = load(ROOT / "bot" / "engines" / "cadence" / "runner.py", "cadence_runner")
    adapter = runner.Adapter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "base.py").write_text(BASE)
        (work / "head.py").write_text(HEAD)
        base = load(work / "base.py", "bench_base").reg.get_workflow("OrderWorkflow")
        head = load(work / "head.py", "bench_head").reg.get_workflow("OrderWorkflow")
        folder = work / "histories"
        folder.mkdir()
        started = time.perf_counter()
        closed, open_ = record(base, ["order-1"]), record(base, ["order-1"], decisions=6)
        for i in range(args.count):
            write(closed if i % 2 else open_, folder / f"order-{i:05d}.json")
        print(f"recorded 2 executions on the SDK's engine, wrote {args.count} files "
              f"({closed.ByteSize()} / {open_.ByteSize()} proto bytes, {len(closed.events)} / {len(open_.events)} events) "
              f"in {time.perf_counter() - started:.2f} s")  # fmt: skip

        files = sorted(folder.iterdir())
        t0 = time.perf_counter()
        parsed = [runner.parse(adapter, p.read_bytes())[0] for p in files]
        parse_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        same = [adapter.replay(base, h)[0] for h in parsed]
        same_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        changed = [adapter.replay(head, h)[0] for h in parsed]
        changed_s = time.perf_counter() - t0
        assert set(same) == {"ok"} and set(changed) == {"nondeterminism"}, (set(same), set(changed))
        n = len(files)
        print(f"parse (Thrift JSON → proto): {parse_s:.2f} s, {parse_s / n * 1000:.2f} ms per history")
        print(
            f"replay, same code (ok):      {same_s:.2f} s, {same_s / n * 1000:.2f} ms per history, {n / same_s:.0f}/s"
        )
        print(
            f"replay, inserted activity:   {changed_s:.2f} s, {changed_s / n * 1000:.2f} ms per history, {n / changed_s:.0f}/s"
        )
        print(
            f"parse + replay: {n / (parse_s + same_s):.0f} histories/s; parse is {parse_s / (parse_s + same_s):.0%} of it"
        )

        repo = work / "repo"
        repo.mkdir()
        git = ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@b"]
        subprocess.run([*git[:3], "init", "-q", "-b", "main"], check=True)
        (repo / "workflows.py").write_text(BASE)
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-qm", "base"], check=True)
        subprocess.run([*git, "checkout", "-qb", "head"], check=True)
        (repo / "workflows.py").write_text(HEAD)
        subprocess.run([*git, "commit", "-qam", "head"], check=True)
        t0 = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "bot", "check", "--repo", str(repo), "--base", "main", "--histories",
             str(folder), "--format", "json", "-o", str(work / "report.json"), "--no-cache"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        whole = time.perf_counter() - t0
        print(
            f"inflight-guard check --histories ({n} files, exit {run.returncode}): {whole:.2f} s, {n / whole:.0f} histories/s end to end"
        )
        print(run.stderr.strip().splitlines()[0] if run.stderr.strip() else "")


if __name__ == "__main__":
    main()
