"""Benchmark: what drawing the pictures costs a check, and the comment's size with and without them.

A Step Functions change of a state machine with N states (one Wait changed, one state renamed, one
added) runs through the whole pipeline on a real git repository; the script prints the check's wall
time, the time of building the pictures and of rendering the comment with and without them, the
comment's size, and the ratios against the same run without pictures.

    python bench/mermaid_pictures.py            # N = 10, 100, 1000
    python bench/mermaid_pictures.py --states 5000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from gitrepo import make_repo  # noqa: E402

from bot.config import Config  # noqa: E402
from bot.engines.base import Draws  # noqa: E402
from bot.engines.registry import engines  # noqa: E402
from bot.pipeline import CheckOptions, analyze, run_check  # noqa: E402
from bot.repo import SourceTree, changed_files, open_repo, resolve_revisions  # noqa: E402
from bot.report.render import markdown  # noqa: E402

CONFIG = {".github/inflight-guard.yml": 'synthesis:\n  mode: "off"\n'}


def machine(states: int, head: bool) -> str:
    body: dict[str, Any] = {f"S{i}": {"Type": "Pass", "Next": f"S{i + 1}"} for i in range(states)}
    mid = states // 2
    body[f"S{mid}"] = {"Type": "Wait", "Seconds": 9 if head else 5, "Next": f"S{mid + 1}"}
    body[f"S{states}"] = {"Type": "Succeed"}
    if head:
        body["S1"] = {"Type": "Pass", "Next": "Added"}
        body["Added"] = {"Type": "Pass", "Result": {"x": 1}, "Next": "S2"}
    return json.dumps({"StartAt": "S0", "States": body}, indent=1)


def best(fn: Any, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def run(states: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(
            Path(tmp) / "repo",
            {**CONFIG, "big.asl.json": machine(states, False)},
            {**CONFIG, "big.asl.json": machine(states, True)},
        )
        started = time.perf_counter()
        report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main"))
        check = time.perf_counter() - started
        git_repo = open_repo(Path(repo.working_dir))
        rev = resolve_revisions(git_repo, "main", "HEAD")
        files = changed_files(rev.base, rev.head)
        analyses = analyze(
            SourceTree(git_repo, rev.base, "base"), SourceTree(git_repo, rev.head, "head"), files, Config()
        )
        registry = engines()

        def draw() -> None:
            for a in analyses:
                e = registry[a.engine]
                if isinstance(e, Draws):
                    e.pictures(a)

        bare = report.model_copy(update={"pictures": []})
        t_draw = best(draw)
        t_with = best(lambda: markdown(report))
        t_without = best(lambda: markdown(bare))
        size_with, size_without = len(markdown(report)), len(markdown(bare))
        drawn = sum(len(p.nodes) for p in report.pictures)
        omitted = sum(p.omitted for p in report.pictures)
        print(
            f"states={states:>5}  check {check * 1000:8.1f} ms  pictures {t_draw * 1000:7.2f} ms "
            f"({t_draw / check:6.2%} of the check)  render {t_with * 1000:6.2f} ms vs {t_without * 1000:6.2f} ms "
            f"without (x{t_with / t_without:4.2f})  comment {size_with:,} vs {size_without:,} chars "
            f"(+{size_with - size_without:,})  nodes drawn {drawn}, not drawn {omitted}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, action="append")
    for n in parser.parse_args().states or [10, 100, 1000]:
        run(n)


if __name__ == "__main__":
    main()
