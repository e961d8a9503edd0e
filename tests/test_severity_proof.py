"""Severity follows the proof (bot/engines/python/evidence.py `closed_only`), against the Replayer.

A step removed at the last point of a workflow: where nothing waits on it (started, not awaited, in
the task that completes the run), only closed executions hold it; where the run waits on it, an
execution in flight holds it too. This test records the base with its own worker, cuts each history
at every point an execution can be in flight, and replays closed histories and in-flight prefixes on
head with `temporalio.worker.Replayer`. The check, given the same histories (and with synthesis
alone), must grade the static finding by that answer: risky when only closed ones fail, breaking
when an in-flight one does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gitrepo import make_repo
from test_outline_proof import files, record, replay_on, write
from truth_recorder import in_flight_prefixes

from bot.histories import ReplayOptions
from bot.model import Report, Severity
from bot.pipeline import CheckOptions, run_check

T = "start_to_close_timeout=T, retry_policy=ONCE"
CASES = {
    # The progress report is started and left: the run completes in the same workflow task.
    "fire_and_forget": (
        f"await workflow.execute_activity(reserve, key, {T})\n"
        f"workflow.start_activity(report_progress, key, {T})\n"
        'return "done"',
        f'await workflow.execute_activity(reserve, key, {T})\nreturn "done"',
    ),
    # The run waits for the progress report: an execution in flight is waiting on it.
    "awaited": (
        f"await workflow.execute_activity(reserve, key, {T})\n"
        f"await workflow.execute_activity(report_progress, key, {T})\n"
        'return "done"',
        f'await workflow.execute_activity(reserve, key, {T})\nreturn "done"',
    ),
}
CLS = "ProgressWorkflow"


def engine(
    tmp: Path, server: str, base: dict[str, str], head: dict[str, str]
) -> tuple[Path, dict[str, bool]]:
    """The base's histories and in-flight prefixes in one folder, and per file whether the Replayer
    fails it on head (the expectation)."""
    histories = record(tmp / "rec", server, CLS, base, ["k-1", "k-2"])
    folder = tmp / "exports"
    folder.mkdir()
    for path in sorted(histories.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        (folder / path.name).write_text(json.dumps(data), encoding="utf-8")
        for i, prefix in enumerate(in_flight_prefixes(data)):
            (folder / f"{path.stem}@{i}.json").write_text(json.dumps(prefix), encoding="utf-8")
    got = replay_on(write(tmp / "head-code", head), CLS, folder, tmp)
    failing = {str(f).split(":", 1)[0] for f in got["failures"]}  # type: ignore[union-attr]
    return folder, {p.name: p.name in failing for p in folder.glob("*.json")}


def check(
    tmp: Path, base: dict[str, str], head: dict[str, str], server: str, histories: Path | None
) -> Report:
    repo = make_repo(tmp / "repo", base, head)
    config = tmp / "inflight-guard.yml"
    # Severities are what these tests look at: the rollback recording is off.
    config.write_text(f"temporal:\n  dev_server: {server}\nsynthesis:\n  rollback: false\n", encoding="utf-8")
    return run_check(
        CheckOptions(
            repo=Path(repo.working_dir),
            base="main",
            config=config,
            replay=ReplayOptions(sources=[str(histories)] if histories else [], cache=None, jobs=1),
            synthesize="always",
        )
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_severity_follows_what_the_replayer_fails(case: str, tmp_path: Path, server: str) -> None:
    base_body, head_body = CASES[case]
    base, head = files(CLS, base_body), files(CLS, head_body)
    folder, fails = engine(tmp_path, server, base, head)
    closed_fail = any(v for name, v in fails.items() if "@" not in name)
    in_flight_fail = any(v for name, v in fails.items() if "@" in name)
    assert closed_fail, fails  # the removed step is in every completed history
    for histories in (folder, None):  # exported histories beside synthesis; then synthesis alone
        report = check(tmp_path / ("exported" if histories else "synthesized"), base, head, server, histories)
        static = [
            f for f in report.findings if f.definition == CLS and f.change and ".replay." not in f.change.kind
        ]
        removed = [f for f in static if f.change and f.change.kind.endswith("command.removed")]
        assert removed, [f.rule for f in static]
        if in_flight_fail:
            assert removed[0].severity == Severity.BREAKING and report.verdict.level.value == "breaking"
        else:
            assert removed[0].severity == Severity.RISKY, (removed[0].severity, removed[0].replay)
            assert "severity risky, not breaking" in (removed[0].replay or ""), removed[0].replay
            assert "stands on static analysis" not in (removed[0].replay or ""), removed[0].replay
            assert report.verdict.level.value != "breaking", [(f.rule, f.severity) for f in report.findings]
