"""Running DagRuns replayed on Airflow's own scheduler, checked against what Airflow itself did.

The fixtures (tests/fixtures/airflow_scheduled/airflow-{3,2}.json) are written by
tests/airflow_sched_recorder.py running real Airflow 3.3.2 and 2.11.2: for each scenario a DagRun is
created by Airflow and advanced by the scheduler's own calls, exported mid-flight in the REST shape,
and then driven to its end twice by Airflow: with the base DAG (control) and after the head DAG is
deployed. Here the tool gets only the two DAG files and the export, as a user's check does, and must
arrive at the same passes and final states, and at the kind of change the scenario declares (the
recorder refused any declaration Airflow's traces contradict).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow_env import AIRFLOW_2, AIRFLOW_3, airflow_python
from conftest import FIXTURES
from gitrepo import make_repo

from bot.engines.airflow.decisions import judge, replay
from bot.engines.airflow.extract import load_with_airflow
from bot.engines.airflow.runs import as_request, read_export
from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check
from bot.repo import SourceTree

RECORDED = FIXTURES / "airflow_scheduled"
VERSIONS = {"3": AIRFLOW_3, "2": AIRFLOW_2}
OUTCOME = {"broken": "nondeterminism", "diverged": "diverged", "ok": "ok"}


def _scenarios(major: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / f"airflow-{major}.json").read_text())
    assert data["airflow"] == VERSIONS[major]
    return dict(data["scenarios"])


def _cases() -> list[tuple[str, str]]:
    return [(m, name) for m in VERSIONS for name in sorted(_scenarios(m))]


class Setup:
    def __init__(self, major: str, root: Path) -> None:
        self.python = airflow_python(VERSIONS[major])
        self.scenarios = _scenarios(major)
        base = {f"dags/{n}.py": c["base"] for n, c in self.scenarios.items()}
        head = {f"dags/{n}.py": c["head"] for n, c in self.scenarios.items()}
        self.repo = make_repo(root / "repo", base, head)
        self.exports = root / "runs"
        self.exports.mkdir()
        for name, case in self.scenarios.items():
            (self.exports / f"{name}.json").write_text(json.dumps(case["export"]))
        self.cache = root / "cache"
        files = sorted(base)
        trees = (
            SourceTree(self.repo, self.repo.commit("main"), "base"),
            SourceTree(self.repo, self.repo.head.commit, "head"),
        )
        self.extraction = load_with_airflow(self.python, trees, "dags", (files, files), 600)
        runs = []
        for name, case in self.scenarios.items():
            found, instances = read_export(case["export"], name)
            assert len(found) == 1
            found[0].tasks = [ti for _, _, ti in instances]
            runs.append(as_request(found[0]))
        dags = {
            n: (self.extraction.base.serialized[n], self.extraction.head.serialized[n])
            for n in self.scenarios
        }
        self.traces, self.figures = replay(self.python, dags, runs, self.cache, 600)
        # The same replay in the DAG loader's own process, kept up for it (what `check --histories` does).
        served = load_with_airflow(self.python, trees, "dags", (files, files), 600, serve=True)
        assert served.live is not None and served.live.alive
        self.served, self.served_figures = replay(self.python, dags, runs, self.cache, 600, served.live)
        served.live.close()
        assert not served.live.alive
        self._report: Report | None = None

    def report(self) -> Report:
        if self._report is None:
            self._report = run_check(
                CheckOptions(
                    repo=Path(self.repo.working_dir),
                    base="main",
                    replay=ReplayOptions(sources=[str(self.exports)], python=self.python, cache=self.cache),
                )
            )
        return self._report


@pytest.fixture(scope="module")
def setups(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Setup]:
    return {}


def _setup(setups: dict[str, Setup], major: str, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    if major not in setups:
        setups[major] = Setup(major, tmp_path_factory.mktemp(f"airflow{major}"))
    return setups[major]


def test_enough_scenarios() -> None:
    cases = _cases()
    assert len(cases) >= 50
    kinds = {_scenarios(m)[n]["kind"] for m, n in cases}
    assert kinds == {"broken", "diverged", "ok"}


@pytest.mark.parametrize(("major", "name"), _cases())
def test_scheduler_decides_as_airflow_did(
    major: str, name: str, setups: dict[str, Setup], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The tool's replay, rebuilt from the export, schedules what Airflow scheduled on the live run."""
    setup = _setup(setups, major, tmp_path_factory)
    case = setup.scenarios[name]
    recorded = case["truth"]
    assert setup.served_figures["in_process"] and not setup.figures["in_process"]
    for entry in (setup.traces[(name, "manual__inflight")], setup.served[(name, "manual__inflight")]):
        assert "error" not in entry, entry
        for side, truth in (
            ("base", recorded["control"]),
            ("head", recorded["head"]),
            ("base_fail", recorded["control_fail"]),
            ("head_fail", recorded["head_fail"]),
        ):
            for key in ("passes", "final", "state", "failed"):
                assert entry[side][key] == truth[key], (side, key, entry[side], truth)
    entry = setup.served[(name, "manual__inflight")]
    base, head = setup.extraction.base.dags[name], setup.extraction.head.dags[name]
    verdict = judge(entry, base, head)
    assert verdict.outcome == OUTCOME[case["kind"]], verdict


@pytest.mark.parametrize("major", sorted(VERSIONS))
def test_check_reports_each_run_as_the_scheduler_decides(
    major: str, setups: dict[str, Setup], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """End to end: `check --histories` over all scenarios at once, one line per running run."""
    setup = _setup(setups, major, tmp_path_factory)
    report = setup.report()
    by_dag = {r.workflow_type: r for r in report.replay if r.run_id == "manual__inflight"}
    for name, case in setup.scenarios.items():
        # A DAG file the change leaves as it was is not one it touches: named, not replayed.
        want = "unmatched" if case["base"] == case["head"] else OUTCOME[case["kind"]]
        assert by_dag[name].outcome == want, (name, by_dag[name].message)
    assert report.replay_summary is not None
    assert report.replay_summary.interpreter.startswith("Airflow's scheduler")
    # One interpreter start and one Airflow import: the replay ran in the DAG loader's process.
    assert any("(in the DAG loader's process)" in n for n in report.replay_summary.notes), (
        report.replay_summary
    )
    broken = {f.definition for f in report.findings if f.rule == "AFL201"}
    assert broken == {n for n, c in setup.scenarios.items() if c["kind"] == "broken"}
    assert report.verdict.level.value == "breaking"


def test_messages_name_what_airflow_did(
    setups: dict[str, Setup], tmp_path_factory: pytest.TempPathFactory
) -> None:
    setup = _setup(setups, "3", tmp_path_factory)
    report = setup.report()
    by_dag = {r.definition: r for r in report.replay if r.run_id == "manual__inflight"}
    assert "new task `audit` appears mid-run" in by_dag["new_root_task"].message
    assert "new leaf task `notify` runs after everything else" in by_dag["new_leaf_after_end"].message
    assert (
        "`load` is scheduled in pass 1 on the head DAG, pass 2 with the base DAG: it runs before its upstream `clean`"
        in by_dag["edge_removed"].message
    )
    assert (
        "`start` finished (success): the scheduler marks it `removed`"
        in by_dag["finished_task_removed"].message
    )
    assert (
        "`load` has not run: it ends `removed` on the head DAG (with the base DAG: `success`)"
        in by_dag["pending_task_renamed"].message
    )
