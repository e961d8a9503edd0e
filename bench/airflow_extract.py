"""Benchmark: Airflow DAG extraction — whole folder vs a pull request touching 3 DAG files.

Builds a git repository with COUNT DAG files (classic operators, TaskFlow, a task group, a mapped
task; every tenth file builds its tasks from a shared helper module), then times with real Airflow
in its own venv (tests/airflow_env.py, or --python):

- subprocess start-up: the loader with no file to load (importing Airflow and DagBag), the fixed
  cost every check pays once;
- whole folder: the loader on every DAG file (one side, one parse) — what loading all DAGs costs;
- PR touching 3 files: `inflight-guard check` on a commit that edits 3 DAG files — only those (and
  what they import) are loaded, base and head, head twice;
- the static `ast` reading of the whole folder, for scale.

Prints seconds and ratios against the whole-folder run of the same process; no target, figures only.

    python bench/airflow_extract.py                    # 300 DAG files, Airflow 3.3.2 venv
    python bench/airflow_extract.py --count 600 --python /path/to/venv/bin/python
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

DAG = """from datetime import datetime

{imports}
{helper_import}

with DAG("pipeline_{n:04d}", start_date=datetime(2026, 1, 1), schedule="@daily", catchup=False, tags=["bench"]):
    start = EmptyOperator(task_id="start")
    extract = BashOperator(task_id="extract", bash_command="echo extract {n}")
    with TaskGroup("transform") as transform:
        clean = BashOperator(task_id="clean", bash_command="echo clean")
        validate = BashOperator(task_id="validate", bash_command="echo validate", retries={retries})
        clean >> validate
    load = BashOperator(task_id="load", bash_command="echo load")
    end = EmptyOperator(task_id="end")
    start >> extract >> transform >> load >> end

    @task
    def list_files():
        return ["a.csv", "b.csv", "c.csv"]

    @task
    def process(name):
        return name.upper()

    process.expand(name=list_files())
{helper_tasks}
"""
EMPTY = {
    3: "from airflow.providers.standard.operators.empty import EmptyOperator",
    2: "from airflow.operators.empty import EmptyOperator",
}
IMPORTS = {
    3: "from airflow.providers.standard.operators.bash import BashOperator\n"
    + EMPTY[3]
    + "\nfrom airflow.sdk import DAG, TaskGroup, task",
    2: "from airflow import DAG\nfrom airflow.decorators import task\n"
    "from airflow.operators.bash import BashOperator\n"
    + EMPTY[2]
    + "\nfrom airflow.utils.task_group import TaskGroup",
}
HELPER = """

CHECKS = ["rows", "nulls", "dupes"]


def checks():
    return [EmptyOperator(task_id=f"check_{name}") for name in CHECKS]
"""


def dag_file(n: int, major: int, retries: int = 1) -> str:
    helper = n % 10 == 0
    return DAG.format(
        imports=IMPORTS[major],
        n=n,
        retries=retries,
        helper_import="from common.checks import checks" if helper else "",
        helper_tasks="    end >> checks()" if helper else "",
    )


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def build(repo: Path, count: int, major: int) -> None:
    (repo / "dags" / "common").mkdir(parents=True)
    (repo / "dags" / "common" / "__init__.py").write_text("")
    (repo / "dags" / "common" / "checks.py").write_text(EMPTY[major] + HELPER)
    for n in range(count):
        (repo / "dags" / f"pipeline_{n:04d}.py").write_text(dag_file(n, major))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "feature")
    for n in (1, count // 2, count - 1):  # a PR touching 3 DAG files: retries changed
        (repo / "dags" / f"pipeline_{n:04d}.py").write_text(dag_file(n, major, retries=3))
    git(repo, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "head")


def loader(python: str, root: Path, files: list[str]) -> tuple[float, dict]:
    from bot.engines.airflow.extract import LOADER, _env

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "answer.json"
        request = Path(tmp) / "request.json"
        request.write_text(
            json.dumps(
                {
                    "out": str(out),
                    "sides": [{"name": "head", "root": str(root), "folder": "dags", "files": files}],
                }
            )
        )
        home = Path(tmp) / "home"
        home.mkdir()
        began = time.perf_counter()
        subprocess.run(
            [python, str(LOADER), str(request)],
            env=_env(str(home), str(root / "dags")),
            check=True,
            capture_output=True,
        )
        seconds = time.perf_counter() - began
        return seconds, json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="DAG files in the folder")
    parser.add_argument("--python", help="interpreter with Airflow (default: the tests' Airflow 3 venv)")
    args = parser.parse_args()
    from airflow_env import AIRFLOW_3, airflow_python

    python = args.python or airflow_python(AIRFLOW_3)
    probe = "import importlib.metadata as m; print(m.version('apache-airflow'))"
    version = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    major = 2 if version.startswith("2.") else 3
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        build(repo, args.count, major)
        files = sorted(f"dags/{p.name}" for p in (repo / "dags").glob("pipeline_*.py"))

        empty, answer = loader(python, repo, [])
        print(f"Airflow {answer['airflow']} in {python}")
        print(
            f"subprocess start-up (no file)      : {empty:7.2f} s   (import airflow + DagBag: {answer['startup']:.2f} s)"
        )

        whole, answer = loader(python, repo, files)
        dags = len(answer["sides"]["head"]["dags"])
        parse = answer["sides"]["head"]["seconds"]
        print(
            f"whole folder ({len(files)} files, {dags} DAGs) : {whole:7.2f} s   "
            f"(parsing {parse:.2f} s = {1000 * parse / len(files):.1f} ms/file; start-up {whole - parse:.2f} s)"
        )

        from bot.config import Config
        from bot.engines.airflow import AirflowEngine
        from bot.repo import SourceTree, changed_files, open_repo, resolve_revisions

        opened = open_repo(repo)
        revisions = resolve_revisions(opened, "main", "HEAD")
        base = SourceTree(opened, revisions.base, "base")
        head = SourceTree(opened, revisions.head, "head")
        changed = changed_files(revisions.base, revisions.head)
        config = Config.model_validate({"airflow": {"python": python, "dags_folder": "dags"}})
        began = time.perf_counter()
        analysis = AirflowEngine().analyze(base, head, changed, config)
        pr = time.perf_counter() - began
        extraction = analysis.context.extraction
        loaded = len(extraction.head.dags)
        print(
            f"PR touching 3 files (check)       : {pr:7.2f} s   ({loaded} DAGs loaded per side, head twice; "
            f"{len(analysis.changes)} changes) = {pr / whole:.2f}x the whole folder"
        )
        print(f"  of which loading beyond start-up : {pr - empty:7.2f} s")

        from bot.engines.airflow.static import read_file

        began = time.perf_counter()
        found = sum(len(read_file(f, (repo / f).read_text()).dags) for f in files)
        static = time.perf_counter() - began
        print(f"static reading, whole folder      : {static:7.2f} s   ({found} DAGs) = {static / whole:.3f}x")


if __name__ == "__main__":
    main()
