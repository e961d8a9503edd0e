"""Benchmark: how much of the PR comment a reviewer reads before expanding anything, for a change to
N Temporal workflows (each with an activity inserted mid-sequence, the same fixture copied N times).

For each N prints: the whole comment's bytes; the bytes outside the collapsed `<details>` sections
(what GitHub shows first); the runbook, rollback and canary steps the plan gives; and, as the
baseline in the same run, how many steps the definitions' own plans hold before shared steps are
joined (the N single-definition plans added up). Figures only, no target.

    python bench/comment_size.py                 # N = 1, 3, 10
    python bench/comment_size.py --n 1 3 30
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from gitrepo import make_repo  # noqa: E402

from bot.model import Report  # noqa: E402
from bot.pipeline import CheckOptions, run_check  # noqa: E402
from bot.report import render  # noqa: E402

CASE = ROOT / "tests" / "fixtures" / "temporal" / "activity_inserted_mid_sequence"
FILE = "app/workflows.py"
NAME = "OrderWorkflow"


def _tree(side: str, n: int, into: Path) -> Path:
    target = into / side
    shutil.copytree(CASE / side, target)
    text = (target / FILE).read_text()
    for i in range(2, n + 1):
        (target / f"app/workflows_{i}.py").write_text(text.replace(NAME, f"{NAME}{i}"))
    return target


def _report(n: int, scratch: Path) -> Report:
    folder = scratch / f"n{n}"
    repo = make_repo(folder / "repo", _tree("base", n, folder), _tree("head", n, folder))
    return run_check(CheckOptions(repo=Path(repo.working_dir), base="main", synthesize="off"))


def _steps(report: Report) -> int:
    plan = report.plan
    return len(plan.runbook) + len(plan.rollback) + len(plan.canary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 3, 10])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        single = _steps(_report(1, scratch / "one"))
        print(f"{'N':>4} {'comment B':>10} {'shown B':>8} {'steps':>6} {'unjoined':>9} {'ratio':>6}")
        for n in args.n:
            report = _report(n, scratch)
            text = render(report, "markdown")
            shown = re.sub(r"<details>.*?</details>\n?", "", text, flags=re.S)
            steps = _steps(report)
            print(
                f"{n:>4} {len(text.encode()):>10} {len(shown.encode()):>8} {steps:>6} {single * n:>9} "
                f"{steps / (single * n):>6.2f}"
            )


if __name__ == "__main__":
    main()
