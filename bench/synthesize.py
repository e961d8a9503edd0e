"""Benchmark: `inflight-guard check` with synthesized histories, against the static check and a
replay of recorded histories, on generated repositories of 20 and 200 Temporal workflows.

Each repository (a real git repo, written with GitPython) holds N workflows, each in its own
package: a workflow class of 3 to 6 activities in sequence, a branch on an activity's result, a
step that waits for a signal, a one-day timer in every third one, dataclass inputs and results;
its activities in their own module with declared return types. A PR (branch `pr`) inserts an
activity mid-sequence in 5 of them: a breaking change for every execution in flight past it.

For each size it times, as a user runs it (a fresh process, imports included):

- the static check (`--synthesize off`),
- the check with synthesis (the default, `auto`): the base code of the 5 changed workflows is
  recorded on a `temporal server start-dev` and replayed on head; the JSON report gives the
  synthesis seconds (dev server, recording and the replay of what was recorded) and the histories
  per workflow,
- the check replaying as many recorded histories of the base (`--histories DIR --synthesize off`):
  the production-replay baseline. The histories are recorded once, before timing, by the same
  driver synthesis uses, on a dev server of their own.

and checks that the synthesis run found what it should: a breaking verdict and a TMP160 finding on
each of the 5 changed workflows. Any run that errors (exit 2), or a verdict that is not breaking,
ends the bench with a non-zero exit.
Targets: the synthesis check under 60 s for the 5-workflow PR (2 cores); its cost follows the
changed workflows, not the repository (20 vs 200 close to 1x). A miss is printed, not an error.

    python bench/synthesize.py                    # 20 and 200 workflows, one run each
    python bench/synthesize.py --sizes 20 --runs 3
    python bench/synthesize.py --sizes 20 --keep  # keep the repos to time them with other tools
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parents[1]
TOUCHED = 5
TARGET_SECONDS = 60.0
DOMAINS = ["Order", "Refund", "Shipment", "Invoice", "Onboarding", "Renewal", "Claim", "Transfer"]
# The main sequence of workflow i: its first 3 + i % 4 steps.
STEPS = ["validate", "reserve", "charge", "ship", "notify", "invoice"]

MODELS = """from dataclasses import dataclass, field


@dataclass
class Order:
    order_id: str
    customer: str
    amount: int
    items: list[str] = field(default_factory=list)
    express: bool = False


@dataclass
class Check:
    flagged: bool
    score: int
    reasons: list[str] = field(default_factory=list)


@dataclass
class Reservation:
    ref: str
    units: int


@dataclass
class Receipt:
    amount: int
    currency: str
    held: bool


@dataclass
class Outcome:
    order_id: str
    status: str
    approver: str | None = None
"""

ACTIVITY_MODULE = """from temporalio import activity

from svc{pkg}.flow_{i}.models import Check, Order, Receipt, Reservation
"""

ACTIVITIES = {
    "validate": """

@activity.defn
async def validate_{i}(order: Order) -> Check:
    reasons = ["amount"] if order.amount > 10_000 else []
    return Check(flagged=bool(reasons), score=order.amount % 100, reasons=reasons)
""",
    "review": """

@activity.defn
async def review_{i}(check: Check) -> bool:
    return check.score < 50
""",
    "reserve": """

@activity.defn
async def reserve_{i}(order: Order) -> Reservation:
    return Reservation(ref=f"r-{{order.order_id}}", units=len(order.items))
""",
    "charge": """

@activity.defn
async def charge_{i}(order: Order, reservation: Reservation) -> Receipt:
    return Receipt(amount=order.amount, currency="EUR", held=reservation.units > 100)
""",
    "ship": """

@activity.defn
async def ship_{i}(order: Order) -> str:
    return f"track-{{order.order_id}}"
""",
    "notify": """

@activity.defn
async def notify_{i}(customer: str, status: str) -> None:
    activity.logger.info("notify %s: %s", customer, status)
""",
    "invoice": """

@activity.defn
async def invoice_{i}(order: Order) -> int:
    return order.amount
""",
    "screen": """

@activity.defn
async def screen_{i}(order: Order) -> int:
    return order.amount // 100
""",
}

CALLS = {
    "reserve": "        reservation = await workflow.execute_activity(reserve_{i}, order, start_to_close_timeout=T)\n",
    "charge": (
        "        receipt = await workflow.execute_activity(\n"
        "            charge_{i}, args=[order, reservation], start_to_close_timeout=T\n"
        "        )\n"
        "        if receipt.held:\n"
        '            return Outcome(order_id=order.order_id, status="held", approver=self.approver)\n'
    ),
    "ship": "        await workflow.execute_activity(ship_{i}, order, start_to_close_timeout=LONG)\n",
    "notify": (
        "        await workflow.execute_activity(\n"
        '            notify_{i}, args=[order.customer, "shipped"], start_to_close_timeout=T\n'
        "        )\n"
    ),
    "invoice": "        await workflow.execute_activity(invoice_{i}, order, start_to_close_timeout=T)\n",
}

WORKFLOW_HEAD = '''"""{name}: {steps}."""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from svc{pkg}.flow_{i}.activities import {imports}
    from svc{pkg}.flow_{i}.models import Order, Outcome

T = timedelta(minutes=5)
LONG = timedelta(hours=2)


@workflow.defn
class {name}:
    def __init__(self) -> None:
        self.approver: str | None = None

    @workflow.signal
    def confirm(self, approver: str) -> None:
        self.approver = approver

    @workflow.query
    def confirmed(self) -> bool:
        return self.approver is not None

    @workflow.run
    async def run(self, order: Order) -> Outcome:
        check = await workflow.execute_activity(validate_{i}, order, start_to_close_timeout=T)
        if check.flagged:
            cleared = await workflow.execute_activity(review_{i}, check, start_to_close_timeout=T)
            if not cleared:
                return Outcome(order_id=order.order_id, status="rejected")
'''

WAIT = "        await workflow.wait_condition(lambda: self.approver is not None)\n"
TIMER = "        await workflow.sleep(timedelta(days=1))\n"
RETURN = '        return Outcome(order_id=order.order_id, status="done", approver=self.approver)\n'
# The PR: one more activity right after the first, before every wait point but the first.
INSERTED = "        await workflow.execute_activity(screen_{i}, order, start_to_close_timeout=T)\n"


@dataclass
class Flow:
    i: int
    pkg: int
    name: str
    steps: list[str]
    timer: bool

    @property
    def folder(self) -> str:
        return f"svc{self.pkg}/flow_{self.i}"

    def activity_names(self, head: bool) -> list[str]:
        return [*self.steps[:1], "review", *self.steps[1:], *(["screen"] if head else [])]

    def activities(self, head: bool) -> str:
        return ACTIVITY_MODULE.format(pkg=self.pkg, i=self.i) + "".join(
            ACTIVITIES[n].format(i=self.i) for n in self.activity_names(head)
        )

    def workflow(self, head: bool) -> str:
        names = self.activity_names(head)
        text = WORKFLOW_HEAD.format(
            name=self.name,
            steps=", ".join(self.steps),
            pkg=self.pkg,
            i=self.i,
            imports=", ".join(f"{n}_{self.i}" for n in sorted(names)),
        )
        if head:
            first = text.index(f"        check = await workflow.execute_activity(validate_{self.i},")
            end = text.index("\n", first) + 1
            text = text[:end] + INSERTED.format(i=self.i) + text[end:]
        for n, step in enumerate(self.steps[1:], start=1):
            text += CALLS[step].format(i=self.i)
            if n == 1:
                text += WAIT
            if n == 2 and self.timer:
                text += TIMER
        return text + RETURN


def flows(count: int, per_package: int = 10) -> list[Flow]:
    return [
        Flow(
            i=i,
            pkg=i // per_package,
            name=f"{DOMAINS[i % len(DOMAINS)]}Workflow{i}",
            steps=STEPS[: 3 + i % 4],
            timer=i % 3 == 0,
        )
        for i in range(count)
    ]


def write(repo: Path, relative: str, text: str) -> None:
    path = repo / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def generate(root: Path, count: int) -> tuple[Path, list[Flow]]:
    """Write the repo (base on `main`, the PR on `pr`); return it and the flows the PR changes."""
    from git import Actor, Repo

    path = root / f"repo-{count}"
    repo = Repo.init(path, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "bench")
        cfg.set_value("user", "email", "bench@inflight-guard.invalid")
    author = Actor("bench", "bench@inflight-guard.invalid")
    all_flows = flows(count)
    for flow in all_flows:
        write(path, f"svc{flow.pkg}/__init__.py", "")
        write(path, f"{flow.folder}/__init__.py", "")
        write(path, f"{flow.folder}/models.py", MODELS)
        write(path, f"{flow.folder}/activities.py", flow.activities(head=False))
        write(path, f"{flow.folder}/workflow.py", flow.workflow(head=False))
    for pkg in sorted({f.pkg for f in all_flows}):
        mine = [f for f in all_flows if f.pkg == pkg]
        lines = ["from temporalio.client import Client", "from temporalio.worker import Worker", ""]
        for f in mine:
            lines.append(f"from svc{pkg}.flow_{f.i} import activities as activities_{f.i}")
            lines.append(f"from svc{pkg}.flow_{f.i}.workflow import {f.name}")
        lines += [
            "",
            f"WORKFLOWS = [{', '.join(f.name for f in mine)}]",
            "ACTIVITIES = [",
            *(f"    activities_{f.i}.{n}_{f.i}," for f in mine for n in f.activity_names(head=False)),
            "]",
            "",
            "",
            "async def main(address: str) -> None:",
            "    client = await Client.connect(address)",
            f'    worker = Worker(client, task_queue="svc{pkg}", workflows=WORKFLOWS, activities=ACTIVITIES)',
            "    await worker.run()",
            "",
        ]
        write(path, f"svc{pkg}/worker.py", "\n".join(lines))
    repo.git.add(A=True)
    repo.index.commit("base", author=author, committer=author)
    repo.git.checkout("-q", "-b", "pr")
    # Spread over the repo, and one of each length of sequence (3 to 6 activities).
    step = count // TOUCHED
    changed = [all_flows[k * step + k % step] for k in range(TOUCHED)]
    for flow in changed:
        write(path, f"{flow.folder}/activities.py", flow.activities(head=True))
        write(path, f"{flow.folder}/workflow.py", flow.workflow(head=True))
    repo.git.add(A=True)
    repo.index.commit("screen orders before reserving", author=author, committer=author)
    return path, changed


def record_histories(root: Path, repo: Path, changed: list[Flow], count: int) -> tuple[Path, float]:
    """Record executions of the base of `changed` on a dev server of their own, with the driver
    synthesis uses; return the folder of in-flight histories and the seconds it took."""
    from bot.engines.temporal import TEMPORAL
    from bot.engines.temporal.devserver import dev_server

    start = time.perf_counter()
    base = root / f"base-{count}"
    base.mkdir()
    archive = subprocess.run(["git", "archive", "main"], cwd=repo, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
    out = root / f"histories-{count}"
    out.mkdir()
    with dev_server() as address:
        config = {
            "paths": [str(base)],
            "workflows": [
                {
                    "type": f.name,
                    "modules": [f"svc{f.pkg}.flow_{f.i}.workflow"],
                    "class": f.name,
                    "file": str(base / f.folder / "workflow.py"),
                }
                for f in changed
            ],
            "activity_modules": [],
            "out": str(out),
            "address": address,
            "executions": 12,
            "histories": 64,
            "max_events": 1000,
            "seconds": 120,
        }
        config_file = root / f"record-{count}.json"
        config_file.write_text(json.dumps(config))
        proc = subprocess.run(
            [sys.executable, str(TEMPORAL.synth_driver), str(config_file)],
            cwd=base,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    errors = [x for x in lines if x.get("kind") == "error"]
    files = sorted(out.rglob("*.json"))
    if proc.returncode != 0 or errors or not files:
        fail(f"recording base histories failed (exit {proc.returncode}): {errors}\n{proc.stderr[-2000:]}")
    return out, time.perf_counter() - start


def fail(message: str) -> NoReturn:
    """Stop the bench: a figure of a run that errored, or found the wrong thing, is worthless."""
    print(f"\nbench failed: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


@dataclass
class Run:
    wall: float
    cpu: float  # user + system seconds of the check and every process it waited for
    report: dict[str, Any]
    returncode: int


@dataclass
class Figures:
    changed: list[Flow]
    recorded: int = 0
    static: list[Run] = field(default_factory=list)
    synthesis: list[Run] = field(default_factory=list)
    production: list[Run] = field(default_factory=list)


def check(repo: Path, report: Path, *extra: str) -> Run:
    cmd = [
        *(sys.executable, "-m", "bot", "check", "--repo", str(repo), "--base", "main", "--head", "pr"),
        *("--python", sys.executable, "--no-cache", "--format", "json", "-o", str(report), *extra),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if proc.returncode not in (0, 1) or not report.exists():
        fail(f"check {' '.join(extra) or '(synthesis)'} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    data = json.loads(report.read_text())
    report.unlink()
    return Run(wall=wall, cpu=cpu, report=data, returncode=proc.returncode)


def findings_by_rule(report: dict[str, Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in report.get("findings") or []:
        out.setdefault(f["rule"], set()).add(f.get("definition") or "")
    return out


def changed_ids(report: dict[str, Any], changed: list[Flow]) -> set[str]:
    """The changed definitions of the report that are the PR's workflows (a Temporal id is the type)."""
    names = {f.name for f in changed}
    return {d["id"] for d in report.get("definitions") or [] if d["status"] == "changed" and d["id"] in names}


def verify(kind: str, run: Run, changed: list[Flow]) -> list[str]:
    """What is wrong with a run that should be breaking on the 5 changed workflows."""
    problems: list[str] = []
    status = (run.report.get("verdict") or {}).get("level")
    if run.returncode != 1 or status != "breaking":
        problems.append(f"{kind}: verdict {status!r}, exit {run.returncode} (expected breaking, exit 1)")
    ids = changed_ids(run.report, changed)
    if len(ids) != len(changed):
        problems.append(f"{kind}: changed definitions {sorted(ids)}, expected {len(changed)}")
    rules = findings_by_rule(run.report)
    if kind == "synthesis":
        missing = sorted(ids - rules.get("TMP160", set()))
        if missing:
            problems.append(f"synthesis: no TMP160 on {missing}")
        synthesis = run.report.get("synthesis") or {}
        if "TMP161" in rules or synthesis.get("errors"):
            problems.append(f"synthesis: TMP161 / errors {synthesis.get('errors')}")
    if kind == "production":
        outcomes = Counter(r["outcome"] for r in run.report.get("replay") or [])
        if not outcomes.get("nondeterminism"):
            problems.append(f"production: replay outcomes {dict(outcomes)}, expected nondeterminism")
    return problems


def describe(figures: Figures, run: Run) -> None:
    """Print the verdict of a synthesis run and what it recorded per workflow."""
    report = run.report
    rules = Counter(f["rule"] for f in report.get("findings") or [])
    print(f"  verdict: {(report.get('verdict') or {}).get('level')}; findings {dict(sorted(rules.items()))}")
    ids = changed_ids(report, figures.changed)
    tmp160 = findings_by_rule(report).get("TMP160", set())
    synthesis = report.get("synthesis") or {}
    print(f"  {'workflow':<24} {'executions':>10} {'histories':>9} {'fail':>5} {'TMP160':>6}  variants")
    for w in synthesis.get("workflows") or []:
        name = w["workflow_type"]
        print(
            f"  {name:<24} {w['executions']:>10} {w['histories']:>9} {w['failed']:>5} "
            f"{'yes' if name in ids & tmp160 else 'NO':>6}  {len(w['variants'])}"
            + (" (truncated)" if w.get("truncated") else "")
        )
    for line in synthesis.get("skipped") or []:
        print(f"  skipped: {line}")


def synthesized(run: Run) -> tuple[int, float]:
    """(histories replayed, seconds summed over each replay) of a synthesis run."""
    mine = [r for r in run.report.get("replay") or [] if r.get("synthesized")]
    return len(mine), sum(r.get("duration_ms") or 0.0 for r in mine) / 1000


def median(runs: list[Run], value: Any = None) -> float:
    return statistics.median(value(r) if value else r.wall for r in runs)


def synthesis_seconds(run: Run) -> float:
    return float((run.report.get("synthesis") or {}).get("seconds", 0.0))


def replay_seconds(run: Run) -> float:
    return float((run.report.get("replay_summary") or {}).get("seconds", 0.0))


def bench_size(tmp: Path, count: int, runs: int) -> Figures:
    start = time.perf_counter()
    repo, changed = generate(tmp, count)
    print(
        f"built {count}-workflow repo ({sum(1 for _ in repo.rglob('*.py'))} files), PR changes "
        f"{', '.join(f.name for f in changed)} in {time.perf_counter() - start:.1f} s",
        flush=True,
    )
    histories, seconds = record_histories(tmp, repo, changed, count)
    figures = Figures(changed=changed, recorded=sum(1 for _ in histories.rglob("*.json")))
    print(f"recorded {figures.recorded} in-flight histories of the base in {seconds:.1f} s", flush=True)
    report = tmp / "report.json"
    problems: list[str] = []
    for n in range(runs):
        figures.static.append(check(repo, report, "--synthesize", "off"))
        print(f"  static check: {figures.static[-1].wall:.2f} s", flush=True)
        figures.synthesis.append(check(repo, report))
        print(f"  check with synthesis: {figures.synthesis[-1].wall:.2f} s", flush=True)
        figures.production.append(check(repo, report, "--histories", str(histories), "--synthesize", "off"))
        print(f"  check --histories ({figures.recorded}): {figures.production[-1].wall:.2f} s", flush=True)
        if n == 0:
            describe(figures, figures.synthesis[-1])
        for kind in ("static", "synthesis", "production"):
            problems += verify(kind, getattr(figures, kind)[-1], changed)
    if problems:
        fail("the bench measured broken runs:\n  " + "\n  ".join(problems))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="20,200", help="workflows per repository, comma-separated")
    parser.add_argument("--runs", type=int, default=1, help="time each check this many times (median)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if any(s < TOUCHED for s in sizes):
        parser.error(f"every size must hold at least {TOUCHED} workflows")

    tmp = Path(tempfile.mkdtemp(prefix="inflight-bench-synthesis-"))
    try:
        results: dict[int, Figures] = {}
        load_before = os.getloadavg()[0]
        for size in sizes:
            results[size] = bench_size(tmp, size, args.runs)
        report(results, args.runs, load_before)
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(results: dict[int, Figures], runs: int, load_before: float) -> None:
    print()
    print(
        f"{TOUCHED} changed workflows"
        + (f", median of {runs} runs" if runs > 1 else "")
        + f"; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, {os.cpu_count()} CPUs"
    )
    print(
        f"{'':9} {'static':>8} {'synthesis':>10} {'--histories':>11} {'synth/static':>13} {'synth/hist':>11}"
    )
    for size, f in results.items():
        for unit in ("wall", "cpu"):
            static = median(f.static, lambda r, u=unit: getattr(r, u))
            synth = median(f.synthesis, lambda r, u=unit: getattr(r, u))
            prod = median(f.production, lambda r, u=unit: getattr(r, u))
            print(
                f"{size:>4} {unit:<4} {static:>7.2f}s {synth:>9.2f}s {prod:>10.2f}s "
                f"{synth / static:>12.1f}x {synth / prod:>10.1f}x"
            )
    print(
        "  cpu: user + system seconds of the check and the processes it waited for (server, driver, runners)"
    )
    print()
    print(
        f"{'workflows':>9} {'synthesis.seconds':>17} {'replay, summed':>14} {'histories':>9} "
        f"{'per workflow':<22} {'--histories':>11} {'replay_summary.seconds':>22}"
    )
    for size, f in results.items():
        first = f.synthesis[0].report.get("synthesis") or {}
        per = ",".join(str(w["histories"]) for w in first.get("workflows") or [])
        print(
            f"{size:>9} {median(f.synthesis, synthesis_seconds):>16.2f}s "
            f"{median(f.synthesis, lambda r: synthesized(r)[1]):>13.2f}s {synthesized(f.synthesis[0])[0]:>9} "
            f"{per:<22} {f.recorded:>11} {median(f.production, replay_seconds):>21.2f}s"
        )
    print(
        "  synthesis.seconds: dev server, recording the base and replaying it on head; replay, summed: the\n"
        "  synthesized histories' replay times (duration_ms) added up, as the report gives no replay wall time\n"
        "  for them; --histories: as many recorded histories of the base, replayed by `check --histories`"
    )
    sizes = sorted(results)
    if len(sizes) > 1:
        small, large = results[sizes[0]], results[sizes[-1]]
        print(f"\nrepo {sizes[-1] / sizes[0]:.0f}x larger, same {TOUCHED}-workflow PR:")
        for label, kind in (
            ("synthesis check", "synthesis"),
            ("static check", "static"),
            ("--histories", "production"),
        ):
            a, b = getattr(small, kind), getattr(large, kind)
            print(
                f"  {label:<16} wall x{median(b) / median(a):.2f}, "
                f"cpu x{median(b, lambda r: r.cpu) / median(a, lambda r: r.cpu):.2f}"
            )
        print(
            f"  synthesis.seconds x{median(large.synthesis, synthesis_seconds) / median(small.synthesis, synthesis_seconds):.2f}"
        )
    for size, f in results.items():
        synth = median(f.synthesis)
        verdict = "met" if synth < TARGET_SECONDS else "MISSED"
        print(
            f"target: synthesis check under {TARGET_SECONDS:.0f} s ({size} workflows): {verdict} ({synth:.1f} s)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
