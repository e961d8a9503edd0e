"""Benchmark: the Step Functions check in a monorepo, against parsing every template as before.

Builds a repository of N apps (each a SAM template with the same logical ids, a child ASL file and
a function's code; plus an activity app, a literal-ARN caller and a template broken in base and
head: tests/sfn_monorepo.py), makes a PR that changes one child definition, and times:

- the pipeline (`run_check`, in-process, after imports; fresh parse cache each run: it includes the
  other engines, e.g. Airflow's one search of head's Python files for the changed data file's name,
  the only repository-wide lookup a change of no Python file makes),
- the Step Functions engine's own collect + diff (from fresh trees: no listing paid beforehand),
- the baseline: reading and parsing every template of both trees with the pure-Python YAML
  loader, which is what a check that parses the whole repository pays (the cost before issue 18),
- `git diff --stat base head`, the floor any diff-based tool pays.

It does this at 300 and 3,000 templates and prints the growth (target: flat in repository size).

    python bench/sfn_monorepo.py                  # 300 and 3,000 templates
    python bench/sfn_monorepo.py --sizes 300      # one size
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402
from sfn_monorepo import child_asl, monorepo  # noqa: E402

from bot import yamlsafe  # noqa: E402
from bot.config import Config  # noqa: E402
from bot.engines.stepfunctions import StepFunctionsEngine, source  # noqa: E402
from bot.pipeline import CheckOptions, run_check  # noqa: E402
from bot.repo import SourceTree, changed_files, open_repo  # noqa: E402


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def build(root: Path, apps: int) -> Path:
    repo = root / f"mono-{apps}"
    files = monorepo(apps)
    for rel, text in files.items():
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    _git(repo.parent, "init", "-q", "-b", "main", str(repo))
    for key, value in (("user.name", "bench"), ("user.email", "bench@invalid"), ("gc.auto", "0")):
        _git(repo, "config", key, value)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    _git(repo, "checkout", "-q", "-b", "feature")
    (repo / "app0001/statemachines/child.asl.json").write_text(child_asl(wait=30))
    _git(repo, "commit", "-q", "-am", "one child waits longer")
    return repo


def time_engine(repo: Path) -> float:
    """The Step Functions engine's own collect + diff (what this benchmark is about)."""
    source.forget_parsed()
    git_repo = open_repo(repo)
    base = SourceTree(git_repo, git_repo.commit("main"), "base")
    head = SourceTree(git_repo, git_repo.commit("HEAD"), "head")
    start = time.perf_counter()
    StepFunctionsEngine().analyze(base, head, changed_files(base.commit, head.commit), Config())
    return time.perf_counter() - start


def time_check(repo: Path) -> tuple[float, str]:
    source.forget_parsed()
    start = time.perf_counter()
    report = run_check(CheckOptions(repo=repo, base="main", head="HEAD"))
    elapsed = time.perf_counter() - start
    rules = ",".join(sorted(f.rule for f in report.findings)) or "-"
    return elapsed, f"{report.verdict.level.value} [{rules}]"


def time_parse_all(repo: Path) -> float:
    """Read (from git objects) and parse every template of both trees with the pure-Python loader."""
    git_repo = open_repo(repo)
    start = time.perf_counter()
    for rev in ("main", "HEAD"):
        tree = SourceTree(git_repo, git_repo.commit(rev), rev)
        for name in sorted(tree.paths):
            if not name.endswith((".yaml", ".json")):
                continue
            text = tree.read(name)
            try:
                if name.endswith(".json"):
                    source.load_json(text)
                else:
                    yamlsafe.load(text, source._CfnLoader)
            except (source.DocumentError, yaml.YAMLError):
                pass  # the broken template counts as read
    return time.perf_counter() - start


def time_diff(repo: Path) -> float:
    start = time.perf_counter()
    _git(repo, "diff", "--stat", "main", "HEAD")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    figures: dict[int, float] = {}
    engines: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="sfn-monorepo-") as tmp:
        for size in args.sizes:
            repo = build(Path(tmp), size)
            checks = [time_check(repo) for _ in range(args.runs)]
            check = statistics.median(c[0] for c in checks)
            parse_all = time_parse_all(repo)
            diff = statistics.median(time_diff(repo) for _ in range(args.runs))
            engine = statistics.median(time_engine(repo) for _ in range(args.runs))
            figures[size] = check
            engines[size] = engine
            print(
                f"{size:>6,} templates: check {check * 1000:7.0f} ms ({checks[0][1]}), "
                f"of which the Step Functions engine {engine * 1000:5.0f} ms; "
                f"parse-every-template baseline {parse_all * 1000:7.0f} ms "
                f"(check/baseline {check / parse_all:.2f}); git diff --stat {diff * 1000:5.0f} ms"
            )
    if len(figures) > 1:
        small, large = min(figures), max(figures)
        print(
            f"growth {small:,} -> {large:,} templates ({large / small:.0f}x the repository): "
            f"check time x{figures[large] / figures[small]:.2f}, Step Functions engine "
            f"x{engines[large] / engines[small]:.2f} (target: flat)"
        )


if __name__ == "__main__":
    main()
