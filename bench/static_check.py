"""Benchmark: the static check on a large generated repo, against `git diff --stat` on the same repo.

Builds a repository of N Python files (a tenth of them Temporal workflows, the rest activities,
workers and plain modules), makes a PR that inserts an activity into 5 workflows, and times:

- `inflight-guard check` as a user runs it (a fresh process, imports included),
- the pipeline alone (in-process, after imports),
- `git diff --stat base head` on the same repo, as the floor any diff-based tool pays.

It does this at 2,000 and 20,000 files to show the check's cost follows the changed files, not
the repository's size. Target: under 3 s for the 2,000-file repo.

    python bench/static_check.py                 # 2,000 and 20,000 files
    python bench/static_check.py --sizes 2000    # one size
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKFLOW = """from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from svc{pkg}.activities import charge_{i}, reserve_{i}, ship_{i}, audit_{i}
    from svc{pkg}.helpers import notify_{i}

T = timedelta(seconds=30)


@workflow.defn
class Workflow{i}:
    def __init__(self) -> None:
        self.approved = False

    @workflow.signal
    def approve(self) -> None:
        self.approved = True

    @workflow.query
    def status(self) -> str:
        return "approved" if self.approved else "waiting"

    @workflow.run
    async def run(self, order_id: str) -> str:
        await workflow.execute_activity(reserve_{i}, order_id, start_to_close_timeout=T)
        await workflow.execute_activity(charge_{i}, order_id, start_to_close_timeout=T)
        await workflow.wait_condition(lambda: self.approved)
        await notify_{i}(order_id)
        return await workflow.execute_activity(ship_{i}, order_id, start_to_close_timeout=T)
"""

ACTIVITY = """

@activity.defn(name="{name}-{i}")
async def {name}_{i}(order_id: str) -> str:
    return order_id
"""

HELPER = """

async def notify_{i}(order_id: str) -> None:
    await workflow.execute_activity(audit_{i}, order_id, start_to_close_timeout=timedelta(seconds=5))
"""

PLAIN = '''"""Module {i}: ordinary application code."""

from dataclasses import dataclass


@dataclass
class Record{i}:
    key: str
    value: int

    def score(self) -> int:
        return sum(ord(c) for c in self.key) * self.value


def build_{i}(items: list[str]) -> list[Record{i}]:
    return [Record{i}(key=item, value=n) for n, item in enumerate(items)]
'''


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def generate(root: Path, files: int, workflows_per_package: int = 10) -> tuple[Path, list[Path]]:
    """Write the repo; return (repo, the workflow files the PR will touch)."""
    repo = root / f"repo-{files}"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "bench@inflight-guard.invalid")
    git(repo, "config", "user.name", "bench")
    workflows = files // 10
    packages = max(1, workflows // workflows_per_package)
    written = 0
    workflow_files: list[Path] = []
    for pkg in range(packages):
        base = repo / f"svc{pkg}"
        base.mkdir()
        (base / "__init__.py").write_text("")
        ids = range(pkg * workflows_per_package, (pkg + 1) * workflows_per_package)
        acts = ["from temporalio import activity\n"]
        helpers = [
            "from datetime import timedelta\n\nfrom temporalio import workflow\n\n",
            f"from svc{pkg}.activities import " + ", ".join(f"audit_{i}" for i in ids) + "\n",
        ]
        for i in ids:
            acts += [ACTIVITY.format(name=n, i=i) for n in ("reserve", "charge", "ship", "audit", "fraud")]
            helpers.append(HELPER.format(i=i))
            path = base / f"workflow_{i}.py"
            path.write_text(WORKFLOW.format(pkg=pkg, i=i))
            workflow_files.append(path)
        (base / "activities.py").write_text("".join(acts))
        (base / "helpers.py").write_text("".join(helpers))
        imports = "\n".join(f"from svc{pkg}.workflow_{i} import Workflow{i}" for i in ids)
        (base / "worker.py").write_text(
            f"{imports}\n\nWORKFLOWS = [{', '.join(f'Workflow{i}' for i in ids)}]\n"
        )
        written += 4 + workflows_per_package
    plain = repo / "lib"
    plain.mkdir()
    for i in range(max(0, files - written)):
        sub = plain / f"pkg{i // 100}"
        sub.mkdir(exist_ok=True)
        (sub / f"mod_{i}.py").write_text(PLAIN.format(i=i))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo, workflow_files


def make_pr(repo: Path, workflow_files: list[Path], touched: int = 5) -> None:
    git(repo, "checkout", "-q", "-b", "pr")
    step = max(1, len(workflow_files) // touched)
    for path in workflow_files[::step][:touched]:
        i = path.stem.split("_")[1]
        pkg = path.parent.name[3:]
        text = path.read_text()
        text = text.replace(
            f"from svc{pkg}.activities import charge_{i},",
            f"from svc{pkg}.activities import fraud_{i}, charge_{i},",
        ).replace(
            f"        await workflow.execute_activity(charge_{i}",
            f"        await workflow.execute_activity(fraud_{i}, order_id, start_to_close_timeout=T)\n"
            f"        await workflow.execute_activity(charge_{i}",
        )
        path.write_text(text)
    git(repo, "commit", "-q", "-am", "insert fraud checks")


def timed(fn: object, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure(repo: Path, repeat: int) -> dict[str, float]:
    from bot.pipeline import CheckOptions, run_check

    def cli() -> None:
        out = subprocess.run(
            [sys.executable, "-m", "bot", "check", "--repo", str(repo), "--base", "main", "--format", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 1:  # the PR is breaking by construction
            raise SystemExit(f"unexpected exit {out.returncode}: {out.stderr}")

    def pipeline() -> None:
        report = run_check(CheckOptions(repo=repo, base="main", head="HEAD"))
        assert sum(d.status == "changed" for d in report.definitions) == 5, report.definitions

    def diff_stat() -> None:
        git(repo, "diff", "--stat", "main", "HEAD")

    return {
        "check": timed(cli, repeat),
        "pipeline": timed(pipeline, repeat),
        "git_diff": timed(diff_stat, repeat),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="inflight-bench-") as tmp:
        for size in args.sizes:
            start = time.perf_counter()
            repo, workflow_files = generate(Path(tmp), size)
            make_pr(repo, workflow_files)
            built = time.perf_counter() - start
            print(
                f"built {size:,}-file repo ({len(workflow_files):,} workflows) in {built:.1f} s", flush=True
            )
            results[size] = measure(repo, args.repeat)

    print()
    print(
        f"{'files':>8} {'workflows':>9} {'changed':>7} {'check (s)':>10} {'pipeline (s)':>12} "
        f"{'git diff --stat (s)':>19} {'check/diff':>10}"
    )
    for size, r in results.items():
        print(
            f"{size:>8,} {size // 10:>9,} {5:>7} {r['check']:>10.3f} {r['pipeline']:>12.3f} "
            f"{r['git_diff']:>19.3f} {r['check'] / r['git_diff']:>9.0f}x"
        )
    sizes = sorted(results)
    if len(sizes) > 1:
        small, large = results[sizes[0]], results[sizes[-1]]
        factor = sizes[-1] / sizes[0]
        print(
            f"\nrepo {factor:.0f}x larger: check x{large['check'] / small['check']:.2f}, "
            f"pipeline x{large['pipeline'] / small['pipeline']:.2f}, "
            f"git diff --stat x{large['git_diff'] / small['git_diff']:.2f}"
        )
    if 2000 in results:
        verdict = "met" if results[2000]["check"] < 3.0 else "MISSED"
        print(f"target: check under 3 s on the 2,000-file repo: {verdict} ({results[2000]['check']:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
