"""Benchmark: running DagRuns replayed on Airflow's own scheduler, beside the DAG loader's start-up.

Builds a git repository with one DAG of 30 tasks (6 layers of 5 BashOperators, each layer waiting for
the one before), a head commit that adds a leaf task after the last layer, and an export of 50
running DagRuns of it at every stage (run i has finished the first i mod 6 layers and runs the next).
Then times, with real Airflow in its own venv (tests/airflow_env.py, or --python):

- loader start-up: the DAG loader subprocess with no file to load (import Airflow and DagBag), the
  fixed cost every Airflow check pays once;
- the PR check's DAG loading (base and head, head twice);
- the replay of the 50 runs on the scheduler (base as control and head, each to its end), cold
  (metadata database migrated into the cache first) and warm (template database copied); warm twice:
  in a process of its own (as before: a second interpreter start and Airflow import) and in the DAG
  loader's process kept up for it (what `check --histories` does now).

Prints seconds, the warm replay per run, and the warm replay and the whole PR check as ratios of the
loader's start-up (target: replay under 2x).

    python bench/airflow_replay.py                     # Airflow 3.3.2 venv of the tests
    python bench/airflow_replay.py --python /path/to/venv/bin/python --runs 50
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

LAYERS, WIDTH = 6, 5
IMPORTS = {
    3: "from airflow.providers.standard.operators.bash import BashOperator\nfrom airflow.sdk import DAG",
    2: "from airflow import DAG\nfrom airflow.operators.bash import BashOperator",
}


def dag_file(major: int, leaf: bool) -> str:
    lines = [
        "from datetime import datetime",
        IMPORTS[major],
        "",
        'with DAG("layered", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):',
        "    layers = []",
        f"    for i in range({LAYERS}):",
        f'        layers.append([BashOperator(task_id=f"t{{i}}_{{j}}", bash_command="echo") for j in range({WIDTH})])',
        "        if i:",
        "            for up in layers[i - 1]:",
        "                up >> layers[i]",
    ]
    if leaf:
        lines.append('    layers[-1] >> BashOperator(task_id="notify", bash_command="echo")')
    return "\n".join(lines) + "\n"


def export(runs: int) -> dict[str, object]:
    dag_runs, tis = [], []
    for n in range(runs):
        run_id = f"manual__{n:03d}"
        dag_runs.append(
            {
                "dag_id": "layered",
                "dag_run_id": run_id,
                "state": "running",
                "run_type": "manual",
                "logical_date": f"2026-01-{1 + n % 28:02d}T{n // 28:02d}:00:00+00:00",
                "start_date": "2026-02-01T00:00:00+00:00",
            }
        )
        done = n % LAYERS
        for i in range(LAYERS):
            for j in range(WIDTH):
                state = "success" if i < done else "running" if i == done else None
                tis.append(
                    {
                        "dag_id": "layered",
                        "dag_run_id": run_id,
                        "task_id": f"t{i}_{j}",
                        "map_index": -1,
                        "state": state,
                        "try_number": 1 if state else 0,
                    }
                )
    return {"dag_runs": dag_runs, "task_instances": tis}


def _rounds(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="running DagRuns in the export")
    parser.add_argument("--python", help="interpreter with Airflow (default: the tests' Airflow 3 venv)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds; each figure is the best round (the machine is shared)"
    )
    args = parser.parse_args()
    from airflow_env import AIRFLOW_3, airflow_python
    from airflow_extract import loader

    python = args.python or airflow_python(AIRFLOW_3)
    probe = "import importlib.metadata as m; print(m.version('apache-airflow'))"
    version = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    major = 2 if version.startswith("2.") else 3
    from bot.config import Config
    from bot.engines.airflow import AirflowContext, AirflowEngine
    from bot.engines.airflow.runs import run_replay
    from bot.histories import ReplayOptions
    from bot.repo import SourceTree, changed_files, open_repo, resolve_revisions

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        (repo / "dags").mkdir(parents=True)
        (repo / "dags" / "layered.py").write_text(dag_file(major, leaf=False))
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "base")
        git(repo, "checkout", "-qb", "feature")
        (repo / "dags" / "layered.py").write_text(dag_file(major, leaf=True))
        git(repo, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "head")
        exports = Path(tmp) / "runs"
        exports.mkdir()
        (exports / "layered.json").write_text(json.dumps(export(args.runs)))

        startups = []
        for _ in range(args.repeat):
            startup, answer = loader(python, repo, [])
            startups.append(startup)
        startup = min(startups)
        print(f"Airflow {answer['airflow']} in {python}; best of {args.repeat} rounds, each interleaved")
        print(f"loader start-up (no file)        : {startup:7.2f} s  (rounds: {_rounds(startups)})")

        opened = open_repo(repo)
        revisions = resolve_revisions(opened, "main", "HEAD")
        base = SourceTree(opened, revisions.base, "base")
        head = SourceTree(opened, revisions.head, "head")
        config = Config.model_validate({"airflow": {"python": python, "dags_folder": "dags"}})
        files = changed_files(revisions.base, revisions.head)
        cache = Path(tmp) / "cache"

        def check(serve: bool) -> tuple[float, float, str]:
            """(DAG loading, replay) seconds of one PR check; `serve`: the check has the exports at
            analysis (as `check --histories` does), so the loader stays up and the replay runs in it."""
            engine = AirflowEngine()
            if serve:
                engine.read_deployment_from([str(exports)], 1 << 30)
            began = time.perf_counter()
            analysis = engine.analyze(base, head, files, config)
            loading = time.perf_counter() - began
            context = analysis.context
            assert isinstance(context, AirflowContext)
            assert (context.extraction.live is not None) == serve
            options = ReplayOptions(sources=[str(exports)], python=python, cache=cache)
            began = time.perf_counter()
            results, summary = run_replay(context, options)
            seconds = time.perf_counter() - began
            outcomes: dict[str, int] = {}
            for r in results:
                outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
            return loading, seconds, f"{outcomes}  ({'; '.join(summary.notes)})"

        loading, seconds, said = check(False)
        print(f"cold, own process (migrates the template): replay {seconds:5.2f} s  {said}")
        rounds: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.repeat):
            for label, serve in (
                ("warm, own process (before)", False),
                ("warm, loader's process (now)", True),
            ):
                loading, seconds, said = check(serve)
                rounds.setdefault(label, []).append((loading, seconds))
        figures: dict[str, tuple[float, float]] = {}
        for label, got in rounds.items():
            loading, seconds = min(g[0] for g in got), min(g[1] for g in got)
            figures[label] = (loading, seconds)
            print(
                f"{label:28}: DAG loading {loading:5.2f} s, replay of {args.runs} runs {seconds:5.2f} s = "
                f"{1000 * seconds / args.runs:6.1f} ms/run  (replay rounds: {_rounds([g[1] for g in got])})"
            )
        print(f"last round: {said}")
        for label in ("warm, own process (before)", "warm, loader's process (now)"):
            loading, seconds = figures[label]
            print(
                f"{label:28}: replay / loader start-up {seconds / startup:5.2f}x (target < 2x); "
                f"PR check (loading + replay) {loading + seconds:5.2f} s = {(loading + seconds) / startup:5.2f}x"
            )


if __name__ == "__main__":
    main()
