"""Read the DAGs of the changed files on both sides: with the user's Airflow, else statically.

The two trees are written to a temporary folder (`git archive`: only the DAG folder, or the
whole tree), and one subprocess of the user's interpreter loads the base files, then the head
files twice (an unstable DAG parses differently each time). No database is created: the
subprocess gets a throwaway AIRFLOW_HOME and a database URL that cannot be opened.
"""

from __future__ import annotations

import io
import json
import os
import select
import shutil
import subprocess
import tarfile
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bot.engines.airflow.model import Dag, Extraction, LoadError, Side
from bot.engines.airflow.static import read_file
from bot.engines.python.pool import find_python, has_module, scrubbed_env
from bot.errors import UserError
from bot.repo import FileUnreadable, SourceTree

LOADER = Path(__file__).with_name("loader.py")
UNREACHABLE_DB = "sqlite:////nonexistent/inflight-guard/airflow.db"
OVERRIDDEN = {
    "AIRFLOW_HOME",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CORE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
}


def airflow_python(explicit: str | None) -> tuple[str | None, str]:
    """(interpreter with Airflow, why), chosen as every engine chooses (`find_python`); None with the
    reason when none has Airflow (the DAG files are then read statically)."""
    try:
        path, why = find_python(explicit, "airflow")
    except UserError as exc:
        if "no such interpreter" in exc.message:
            raise
        return None, exc.message
    if not has_module(path, "airflow"):
        return None, "no interpreter with Airflow found (pass --python or set airflow.python)"
    return path, why


def materialize(tree: SourceTree, dest: Path) -> None:
    """Write the tree's files at its commit under `dest` (DAGs import from outside their folder:
    `include/`, plugins)."""
    buffer = io.BytesIO()
    try:
        tree.repo.git.archive(tree.sha, format="tar", output_stream=buffer)
    except Exception as exc:
        raise UserError(f"airflow: cannot read the tree at {tree.sha[:7]}: {exc}") from None
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        tar.extractall(dest, filter="data")


def _env(home: str, dags: str) -> dict[str, str]:
    env = scrubbed_env()
    # The user's Airflow settings, Variables and Connections (parse-time `Variable.get` needs them:
    # there is no database to read them from).
    prefixes = ("AIRFLOW__", "AIRFLOW_VAR_", "AIRFLOW_CONN_")
    env.update({k: v for k, v in os.environ.items() if k.startswith(prefixes) and k not in OVERRIDDEN})
    env.update(
        AIRFLOW_HOME=home,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=UNREACHABLE_DB,
        AIRFLOW__CORE__SQL_ALCHEMY_CONN=UNREACHABLE_DB,
        AIRFLOW__CORE__DAGS_FOLDER=dags,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="ERROR",
    )
    return env


MAX_ASKED = 200  # DAGs whose last run one check asks the REST API for


class LoaderFailed(Exception):
    """The served loader could not answer (one line saying why)."""


class LiveLoader:
    """The DAG loader's process, kept up after loading (`loader.py` with `serve`): the scheduler replay
    runs in it, so Airflow is started and imported once per check. It ends when closed, when this
    object is collected, when inflight-guard exits (its standard input closes), or idle."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        folder: tempfile.TemporaryDirectory[str],
        ask_last: Callable[[list[str]], dict[str, list[str]]] | None = None,
    ) -> None:
        self.proc = proc
        self.ask_last = ask_last
        self.root = Path(folder.name)
        self._stop = weakref.finalize(self, _stop, proc, folder)
        self._asked = 0

    @property
    def alive(self) -> bool:
        return self._stop.alive and self.proc.poll() is None

    def wait_for(self, word: str, timeout: float) -> None:
        """Read the channel's next line; LoaderFailed unless it is `word` within `timeout` seconds. The
        loader's questions on the way (`last IDS`: DAGs' last scheduled runs) are answered."""
        deadline = time.monotonic() + timeout
        line = _read_line(self.proc, timeout)
        while line and line.startswith("last ") and word == "loaded":
            self._answer_last(line.removeprefix("last "))
            line = _read_line(self.proc, max(deadline - time.monotonic(), 0.0))
        if line is None:
            self.close()
            raise LoaderFailed(f"no answer within {timeout:.0f} s")
        if line != word:
            tail = _tail(_read_text(self.root / "stderr.txt"))
            self.close()
            if not line:
                raise LoaderFailed(tail or f"exit code {self.proc.poll()}")
            raise LoaderFailed(line.removeprefix("failed: "))

    def _answer_last(self, question: str) -> None:
        found: dict[str, list[str]] = {}
        try:
            ids = json.loads(question)
        except ValueError:
            ids = []
        wanted = [str(i) for i in ids if isinstance(i, str)][:MAX_ASKED] if isinstance(ids, list) else []
        if self.ask_last is not None and wanted:
            found = self.ask_last(wanted)
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(found).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # the loader ended: the next read says so

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one replay request (`scheduler.answer`) and return its answer."""
        if not self.alive:
            raise LoaderFailed("the DAG loader has ended")
        self._asked += 1
        path = self.root / f"replay-{self._asked}.json"
        request = {**request, "out": str(path)}
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError as exc:
            self.close()
            raise LoaderFailed(f"the DAG loader has ended ({exc.strerror or exc})") from None
        self.wait_for("done", timeout)
        try:
            answer: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            path.unlink()
        except (OSError, ValueError):
            raise LoaderFailed("it wrote no readable answer") from None
        if not isinstance(answer, dict):
            raise LoaderFailed("it wrote no readable answer")
        return answer

    def close(self) -> None:
        self._stop()


def _stop(proc: subprocess.Popen[bytes], folder: tempfile.TemporaryDirectory[str]) -> None:
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    folder.cleanup()


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> str | None:
    """One line of the served loader's channel: '' when it ended, None when `timeout` passed."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return data.decode("utf-8", "replace").strip()
        data += chunk
    return data.decode("utf-8", "replace").strip()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _tail(stderr: str) -> str:
    """The last line of a failed run's standard error that says something (not a warning, not a frame)."""
    lines = [
        ln for ln in stderr.splitlines() if ln.strip() and "Warning" not in ln and not ln.startswith(" ")
    ]
    return lines[-1][:300] if lines else ""


def load_with_airflow(
    python: str,
    trees: tuple[SourceTree, SourceTree],
    folder: str,
    files: tuple[list[str], list[str]],
    timeout: float,
    last_runs: dict[str, list[str]] | None = None,
    serve: bool = False,
    ask_last: Callable[[list[str]], dict[str, list[str]]] | None = None,
) -> Extraction:
    """Run the loader in `python` on both sides; UserError (one line) when it cannot run. With `serve`,
    the loader stays up for the scheduler replay (`Extraction.live`); with `ask_last` too, it asks for
    the last scheduled runs of the DAGs it loaded with catchup on (by their loaded ids)."""
    tmp = tempfile.TemporaryDirectory(prefix="inflight-guard-airflow-")
    handed = False  # to the live loader, which cleans the folder up when it ends
    try:
        root = Path(tmp.name)
        sides: list[dict[str, Any]] = []
        for tree, paths in zip(trees, files, strict=True):
            dest = root / tree.side
            dest.mkdir()
            if paths:
                materialize(tree, dest)
            sides.append(
                {
                    "name": tree.side,
                    "root": str(dest),
                    "folder": folder,
                    "files": sorted(paths),
                    "twice": tree.side == "head",
                }
            )
        out = root / "answer.json"
        request = root / "request.json"
        # `last_runs`: where the scheduler continues for DAGs that have runs (catchup counts from there)
        request.write_text(
            json.dumps(
                {
                    "out": str(out),
                    "sides": sides,
                    "last_runs": last_runs or {},
                    "serve": serve,
                    "ask_last": serve and ask_last is not None,
                }
            ),
            encoding="utf-8",
        )
        home = root / "airflow-home"
        home.mkdir()
        began = time.monotonic()
        command = [python, str(LOADER), str(request)]
        env = _env(str(home), str(root / "head" / folder))
        live: LiveLoader | None = None
        if serve:
            handed = True
            live = _start(command, env, tmp, timeout, python, ask_last)
            for side in sides:  # the trees are read: only the loader's home stays
                shutil.rmtree(str(side["root"]), ignore_errors=True)
        else:
            _run(command, env, root, timeout, python)
        try:
            answer = json.loads(out.read_text(encoding="utf-8"))
            out.unlink()
        except (OSError, ValueError):
            if live is not None:
                live.close()
            raise UserError(f"airflow: the DAG loader in {python} wrote no readable answer") from None
    finally:
        if not handed:
            tmp.cleanup()
    total = time.monotonic() - began
    got = answer["sides"]
    return Extraction(
        base=_side(got.get("base", {})),
        head=_side(got.get("head", {})),
        mode="airflow",
        airflow_version=str(answer.get("airflow")),
        reason=f"loaded in {total:.1f} s",
        python=python,
        live=live,
    )


def _run(command: list[str], env: dict[str, str], root: Path, timeout: float, python: str) -> None:
    try:
        proc = subprocess.run(
            command, env=env, cwd=str(root), capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise UserError(f"airflow: loading the DAG files took longer than {timeout:.0f} s") from None
    except OSError as exc:
        raise UserError(f"airflow: cannot start {python}: {exc.strerror or exc}") from None
    if proc.returncode != 0 or not (root / "answer.json").exists():
        last = _tail(proc.stderr.decode("utf-8", "replace")) or f"exit code {proc.returncode}"
        raise UserError(f"airflow: the DAG loader failed in {python}: {last}")


def _start(
    command: list[str],
    env: dict[str, str],
    folder: tempfile.TemporaryDirectory[str],
    timeout: float,
    python: str,
    ask_last: Callable[[list[str]], dict[str, list[str]]] | None = None,
) -> LiveLoader:
    """The loader started to stay up (it owns `folder` from now on): once it said `loaded`, its answer
    is written."""
    root = Path(folder.name)
    try:
        with (root / "stderr.txt").open("wb") as stderr:  # the process keeps its own descriptor
            proc = subprocess.Popen(
                command, env=env, cwd=str(root), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
            )
    except OSError as exc:
        folder.cleanup()
        raise UserError(f"airflow: cannot start {python}: {exc.strerror or exc}") from None
    live = LiveLoader(proc, folder, ask_last)
    try:
        live.wait_for("loaded", timeout)
    except LoaderFailed as exc:
        if "no answer within" in str(exc):
            raise UserError(f"airflow: loading the DAG files took longer than {timeout:.0f} s") from None
        raise UserError(f"airflow: the DAG loader failed in {python}: {exc}") from None
    return live


def _side(data: dict[str, object]) -> Side:
    side = Side()
    unstable = data.get("unstable") or {}
    for raw in data.get("dags", []) or []:  # type: ignore[attr-defined]
        dag = Dag.from_json(raw)
        fields = unstable.get(dag.dag_id) if isinstance(unstable, dict) else None
        dag.unstable = tuple(fields or ())
        side.dags[dag.dag_id] = dag
    for err in data.get("import_errors", []) or []:  # type: ignore[attr-defined]
        side.import_errors.append(LoadError(str(err["path"]), int(err.get("line") or 1), str(err["message"])))
    serialized = data.get("serialized")
    side.serialized = dict(serialized) if isinstance(serialized, dict) else {}
    return side


def load_static(tree: SourceTree, files: Iterable[str]) -> Side:
    """The fallback: read each file's DAGs with `ast`."""
    side = Side()
    for path in sorted(files):
        try:
            text = tree.read(path)
        except FileUnreadable:
            continue
        found = read_file(path, text)
        if found.error is not None:
            side.import_errors.append(LoadError(path, found.error[0], found.error[1]))
        side.dags.update(found.dags)
    return side


def add_lines(side: Side, tree: SourceTree) -> None:
    """Give each task the line of its definition (Airflow does not keep it): from the static reading."""
    by_path: dict[str, list[Dag]] = {}
    for dag in side.dags.values():
        by_path.setdefault(dag.path, []).append(dag)
    for path, dags in by_path.items():
        try:
            text = tree.read(path)
        except FileUnreadable:
            continue
        found = read_file(path, text)
        for dag in dags:
            dag.line = (
                found.dag_lines.get(dag.dag_id)
                or _literal_line(text, dag.dag_id)
                or found.functions.get(dag.dag_id)  # `@asset def raw_orders()`: the DAG is the function
                or 1
            )
            for task in dag.tasks.values():
                # The static map first: a classic operator's call, a TaskFlow function's `def`, in both
                # modes. Then the one call whose `task_id=` makes this id (a loop's or a factory's
                # f-string). Airflow knows only a callable's line: that is the task for TaskFlow, but
                # not for a classic operator (its `python_callable`'s def is not where it is built).
                short = task.task_id.rsplit(".", 1)[-1]
                taskflow = task.operator.startswith("@")
                task.line = (
                    found.task_lines.get((dag.dag_id, task.task_id))
                    or found.lines.get(task.task_id)
                    or found.lines.get(short)
                    or found.line_of_id(task.task_id)
                    or found.line_of_id(short)
                    or (task.line if taskflow else None)
                    or _literal_line(text, short)
                    or found.helper_calls.get(dag.dag_id)
                    or dag.line
                )


def _literal_line(text: str, literal: str) -> int | None:
    for quote in ('"', "'"):
        needle = f"{quote}{literal}{quote}"
        at = text.find(needle)
        if at >= 0:
            return text.count("\n", 0, at) + 1
    return None
