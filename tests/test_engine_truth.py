"""Verdicts against the engine's own answer, case by case (tests/fixtures/truth).

Each case is a base tree, a head tree and a `scenario.yaml` (tests/truth_recorder.py says how it
drives the base). The base runs on the real Temporal dev server with scripted activities; its
completed histories are cut into in-flight prefixes and replayed on head with the real Replayer.
Truth: breaking iff some in-flight prefix fails on head (or, `truth_from: activity_decode`, an
activity task open at a prefix's end carries an input head cannot decode). The tool must block
exactly the breaking cases:

- static only (no histories), unless `static: known_miss` (then it must still miss: when static
  analysis learns the class, the marker has to go);
- with the recorded prefixes supplied as production histories (`--histories DIR`);
- with histories synthesized from base (`--synthesize always`, no exports): they fail on head exactly
  when the Replayer fails a recorded in-flight history.

expected.yaml: `description`, `truth: breaking|safe`, optional `truth_from: replay|activity_decode`
(default replay), optional `static: known_miss` with `static_reason`.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FIXTURES
from fixture_harness import explain
from gitrepo import make_repo
from truth_recorder import Recording, Truth, TruthRecorder, load_scenario, replay

from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check

TRUTH = FIXTURES / "truth"
CASES = sorted(p for p in TRUTH.iterdir() if p.is_dir())
KEYS = {"description", "truth", "truth_from", "static", "static_reason"}
CLASSES = {
    "guard",
    "gather",
    "order",
    "value",
    "dispatch",
    "input",
    "activity",
    "timer",
    "child",
    "signal",
    "update",
    "refactor",
}
NOT_BLOCKED = ("safe", "safe_with_gates")
# Cases worked on at once: each job (record, replay, synthesize, check) is a few subprocesses that
# spend most of their time waiting on the dev server, so more than the two cores keeps both busy.
PARALLEL_CASES = 4


def _expected(case: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((case / "expected.yaml").read_text())
    assert set(data) <= KEYS, f"{case.name}: unknown keys {set(data) - KEYS}"
    assert data.get("description"), f"{case.name}: describe the case"
    assert data["truth"] in ("breaking", "safe"), case.name
    assert data.get("truth_from", "replay") in ("replay", "activity_decode"), case.name
    assert data.get("static") in (None, "known_miss"), case.name
    assert bool(data.get("static_reason")) == (data.get("static") == "known_miss"), (
        f"{case.name}: a known_miss has a one-line static_reason, and only then"
    )
    return data


class Engine:
    """The session's recordings, each case's truth and the tool's reports, computed once."""

    def __init__(self, recorder: TruthRecorder, work: Path, server: str) -> None:
        self.recorder = recorder
        self.work = work
        self.server = server
        self._truths: dict[str, Truth] = {}
        self._reports: dict[str, Report] = {}
        self._synthesized: dict[str, Report] = {}

    def recording(self, case: Path) -> Recording:
        return self.recorder.recording(case / "base", load_scenario(case))

    def truth(self, case: Path) -> Truth:
        if case.name not in self._truths:
            self._truths[case.name] = replay(
                case / "head", self.recording(case), load_scenario(case), self.work / case.name
            )
        return self._truths[case.name]

    def production_report(self, case: Path) -> Report:
        """The tool's report with the recorded prefixes supplied as production histories."""
        if case.name not in self._reports:
            tmp = self.work / case.name / "check"
            shutil.rmtree(tmp, ignore_errors=True)  # a retry after a failed prefetch starts clean
            self.recording(case).write_prefixes(tmp / "histories")
            self._reports[case.name] = _check(_repo(case, tmp), tmp, histories=tmp / "histories")
        return self._reports[case.name]

    def synthesized_report(self, case: Path) -> Report:
        """The tool's report with no exports: histories synthesized from base on the session's server."""
        if case.name not in self._synthesized:
            tmp = self.work / case.name / "synthesized"
            shutil.rmtree(tmp, ignore_errors=True)  # a retry after a failed prefetch starts clean
            tmp.mkdir(parents=True)
            config = tmp / "inflight-guard.yml"
            # The verdict is what these cases test; the rollback recording (tests/test_rollback_proof.py)
            # is switched off, as a user who wants the verdict fast would.
            settings = {"temporal": {"dev_server": self.server}, "synthesis": {"rollback": False}}
            config.write_text(yaml.safe_dump({"version": 1, **settings}))
            self._synthesized[case.name] = _check(_repo(case, tmp), tmp, config=config, synthesize="always")
        return self._synthesized[case.name]

    def prefetch(self, wanted: dict[str, set[Path]]) -> None:
        """Compute what the selected tests (name -> cases) will ask for, several cases at a time.

        Synthesis and recording mostly wait on the server (timers, stalled executions), so a few
        cases run at once. A job that fails here is left uncached: the test that asks for it runs it
        again and shows the failure itself.
        """
        cases = [c for c in CASES if any(c in s for s in wanted.values())]
        jobs = [
            (self.synthesized_report, c) for c in cases if c in wanted.get("test_synthesized_verdict", ())
        ]
        jobs += [(self.truth, c) for c in cases]
        for test in ("test_production_histories_verdict", "test_production_replay_outcomes_are_the_engines"):
            jobs += [(self.production_report, c) for c in cases if c in wanted.get(test, ())]

        def run(job: tuple[Callable[[Path], object], Path]) -> None:
            with contextlib.suppress(Exception):
                job[0](job[1])

        with ThreadPoolExecutor(PARALLEL_CASES) as pool:
            list(pool.map(run, list(dict.fromkeys(jobs))))


@pytest.fixture(scope="module")
def engine(server: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Engine:
    wanted: dict[str, set[Path]] = {}
    for item in request.session.items:
        if (
            item.module is sys.modules[__name__]
            and hasattr(item, "callspec")
            and "case" in item.callspec.params
        ):
            wanted.setdefault(item.originalname, set()).add(item.callspec.params["case"])
    recorder = TruthRecorder(server, tmp_path_factory.mktemp("truth-recordings"))
    engine = Engine(recorder, tmp_path_factory.mktemp("truth-replays"), server)
    engine.prefetch(wanted)
    return engine


def _check(
    repo: Path,
    tmp: Path,
    histories: Path | None = None,
    config: Path | None = None,
    synthesize: str = "off",
) -> Report:
    return run_check(
        CheckOptions(
            repo=repo,
            base="main",
            head="HEAD",
            config=config,
            synthesize=synthesize,
            replay=ReplayOptions(
                sources=[str(histories)] if histories else (),
                python=sys.executable,
                cache=tmp / "cache",
                jobs=1,
            ),
        )
    )


def _repo(case: Path, tmp: Path) -> Path:
    return Path(make_repo(tmp / "repo", case / "base", case / "head").working_dir)


def _agrees(report: Report, truth: Truth) -> bool:
    level = report.verdict.level.value
    return level == "breaking" if truth.verdict == "breaking" else level in NOT_BLOCKED


def _disagreement(what: str, case: Path, report: Report, truth: Truth) -> str:
    return f"{case.name}: {what} verdict {report.verdict.level.value}, truth {truth.verdict}\n{explain(report)}\n{truth.explain()}"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_truth_is_the_expected_one(case: Path, engine: Engine) -> None:
    want = _expected(case)
    truth = engine.truth(case)
    assert truth.verdict == want["truth"], f"{case.name}\n{truth.explain()}"
    if truth.verdict == "breaking":
        source = want.get("truth_from", "replay")
        assert source in truth.sources, f"{case.name}: breaking by {truth.sources}, not {source}"
        if source == "activity_decode":
            assert "replay" not in truth.sources, f"{case.name}: replay fails too\n{truth.explain()}"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_static_verdict(case: Path, engine: Engine, tmp_path: Path) -> None:
    want = _expected(case)
    truth = engine.truth(case)
    report = _check(_repo(case, tmp_path), tmp_path)
    agrees = _agrees(report, truth)
    if want.get("static") == "known_miss":
        assert not agrees, (
            f"{case.name}: static analysis now agrees with the engine: remove `static: known_miss`\n"
            + explain(report)
        )
    else:
        assert agrees, _disagreement("static", case, report, truth)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_production_histories_verdict(case: Path, engine: Engine) -> None:
    truth = engine.truth(case)
    report = engine.production_report(case)
    agrees = _agrees(report, truth)
    assert agrees, _disagreement("--histories", case, report, truth)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_production_replay_outcomes_are_the_engines(case: Path, engine: Engine) -> None:
    """The tool replays every supplied prefix, and fails exactly the ones the Replayer fails."""
    truth = engine.truth(case)
    report = engine.production_report(case)
    tool = {Path(r.history).parent.name: r.outcome for r in report.replay}
    assert sorted(tool) == sorted(o.name for o in truth.outcomes), f"{case.name}: not replayed {tool}"
    failed = {name for name, outcome in tool.items() if outcome in ("nondeterminism", "error", "timeout")}
    expected = {o.name for o in truth.outcomes if o.replay is not None}
    assert failed == expected, (
        f"{case.name}: the tool fails {sorted(failed)}, the Replayer {sorted(expected)}"
    )


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_synthesized_verdict(case: Path, engine: Engine) -> None:
    """No exports: the histories synthesized from base fail on head exactly when the Replayer fails
    a recorded in-flight history; the verdict blocks every breaking case and, where static analysis
    is right about a safe one, synthesis adds no false alarm."""
    want = _expected(case)
    truth = engine.truth(case)
    report = engine.synthesized_report(case)
    assert report.synthesis is not None and report.synthesis.workflows, (case.name, report.synthesis)
    failing = [r.history for r in report.replay if r.synthesized and r.failed]
    by_replay = "replay" in truth.sources
    assert bool(failing) == by_replay, (
        f"{case.name}: synthesized histories failing on head: {failing or 'none'}; the Replayer fails "
        f"recorded in-flight ones: {by_replay}\n{truth.explain()}\n{report.synthesis}"
    )
    if report.plan.rollback_proof:  # the section says the recording was off, not that a revert is safe
        assert "`synthesis.rollback: false`" in report.plan.rollback_proof, report.plan.rollback_proof
    if truth.verdict == "breaking":
        assert report.verdict.level.value == "breaking", _disagreement("synthesized", case, report, truth)
    elif want.get("static") != "known_miss":
        assert _agrees(report, truth), _disagreement("synthesized", case, report, truth)


def test_every_class_is_covered_and_counted() -> None:
    """README.md's table holds, per class, the cases and how many are breaking, safe, known misses."""
    wanted = {c.name: _expected(c) for c in CASES}
    assert all(re.fullmatch(r"[a-z]+__[a-z0-9_]+", n) for n in wanted), list(wanted)
    rows: dict[str, list[int]] = {}
    for name, want in wanted.items():
        row = rows.setdefault(name.split("__")[0], [0, 0, 0, 0])
        row[0] += 1
        row[1 if want["truth"] == "breaking" else 2] += 1
        row[3] += want.get("static") == "known_miss"
    assert set(rows) == CLASSES, set(rows) ^ CLASSES
    assert len(wanted) >= 44 and rows["refactor"][0] >= 10
    readme = (TRUTH / "README.md").read_text()
    table = re.findall(r"^\| `(\w+)` \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|", readme, re.MULTILINE)
    assert {cls: [int(n) for n in ns] for cls, *ns in table} == rows, "update the table in README.md"
