"""Which supplied histories replay, and why the others do not: none is ever dropped silently.

The demo's histories were recorded on a real Temporal dev server from the demo's base code
(order-1001 completed, order-1002 waiting past the charge, order-1003 before it); they replay here
with this interpreter's temporalio against real git repositories built from the demo example.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import git
import pytest
from cli_support import run_process
from conftest import FIXTURES
from gitrepo import ACTOR, make_repo

from bot.demo import BRANCH, EXAMPLE, HISTORIES, build_repo
from bot.evidence import display_path
from bot.histories import ReplayOptions
from bot.pipeline import CheckOptions, run_check

NAMES = ("order-1001.json", "order-1002.json", "order-1003.json")
CADENCE_EXPORT = FIXTURES / "cadence_histories" / "order-workflow-cli-export.json"
REFUNDS = '''"""Refunds: charge back an order."""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from orders.activities import charge_payment, reserve_inventory

STEP = timedelta(minutes=5)


@workflow.defn
class RefundWorkflow:
    @workflow.run
    async def run(self, order_id: str) -> str:
        return await workflow.execute_activity(charge_payment, order_id, start_to_close_timeout=STEP)
'''


def tree(side: str, **files: str) -> dict[str, str]:
    """The demo example's `side`, with `files` added or replaced."""
    root = EXAMPLE / side
    out = {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*.py")}
    return {**out, **files}


def check(
    repo: Path, *extra: str | Path, histories: Path = HISTORIES, fmt: str = "json"
) -> tuple[int, Any, str]:
    run = run_process(
        "check",
        "--repo",
        repo,
        "--base",
        "main",
        "--histories",
        histories,
        "--no-cache",
        "--format",
        fmt,
        *extra,
    )
    assert "Traceback" not in run.stderr, run.stderr
    return run.exit_code, json.loads(run.stdout) if fmt == "json" else run.stdout, run.stderr


def essence(report: dict[str, Any]) -> dict[str, Any]:
    """What a check concluded, without the commit ids and timings that differ between two runs."""
    return {
        "verdict": report["verdict"],
        "definitions": report["definitions"],
        "findings": report["findings"],
        "gates": report["gates"],
        # The plan's commands name the base commit (`--base <sha>`), which differs between two repositories.
        "plan": json.loads(re.sub(r"\b[0-9a-f]{12}\b", "<sha>", json.dumps(report["plan"]))),
        "replay": [{k: v for k, v in r.items() if k != "duration_ms"} for r in report["replay"]],
        "counts": report["replay_summary"]["counts"],
        "notes": report["replay_summary"]["notes"],
    }


def with_root_init(repo_path: Path) -> Path:
    """Add an `__init__.py` at the root of `main` and bring it into the demo branch."""
    repo = git.Repo(repo_path)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", ACTOR.name)
        cw.set_value("user", "email", ACTOR.email)
    repo.git.checkout("main")
    (repo_path / "__init__.py").write_text("")
    repo.git.add("__init__.py")
    repo.index.commit("Make the checkout a package", author=ACTOR, committer=ACTOR)
    repo.git.checkout(BRANCH)
    repo.git.merge("main", "--no-edit")
    return repo_path


def test_root_init_changes_nothing_in_the_demo(tmp_path: Path) -> None:
    plain = build_repo(tmp_path / "plain")
    packaged = with_root_init(build_repo(tmp_path / "packaged"))
    assert (packaged / "__init__.py").exists() and not (plain / "__init__.py").exists()
    code, expected, _ = check(plain)
    assert code == 1 and expected["verdict"]["level"] == "breaking"
    assert [d["id"] for d in expected["definitions"]] == ["OrderWorkflow"]
    assert expected["replay_summary"]["counts"] == {"nondeterminism": 2, "ok": 1}
    code_packaged, report, _ = check(packaged)
    assert code_packaged == code
    assert essence(report) == essence(expected)


ACTIVITY_RENAMED = {'name="charge-payment"': 'name="charge-card"'}


@pytest.mark.parametrize(
    "workflows_import",
    [
        "from orders.activities import charge_payment, reserve_inventory, ship_order",
        "from .activities import charge_payment, reserve_inventory, ship_order",
    ],
    ids=["absolute", "relative"],
)
def test_root_init_still_finds_the_workflow_of_a_changed_activity(
    workflows_import: str, tmp_path: Path
) -> None:
    """Only the activities module changes (an activity's registered name): its importer is judged and
    replayed whether or not the repository root holds an `__init__.py`."""
    base = tree("base")
    base["orders/workflows.py"] = base["orders/workflows.py"].replace(
        "from orders.activities import charge_payment, reserve_inventory, ship_order", workflows_import
    )
    head = dict(base)
    for old, new in ACTIVITY_RENAMED.items():
        head["orders/activities.py"] = head["orders/activities.py"].replace(old, new)
    assert head["orders/activities.py"] != base["orders/activities.py"]
    reports = {}
    for name, extra in (("plain", {}), ("packaged", {"__init__.py": ""})):
        repo = make_repo(tmp_path / name, {**base, **extra}, {**head, **extra})
        reports[name] = check(Path(repo.working_dir))
    code, expected, _ = reports["plain"]
    assert code == 1
    assert [(d["id"], d["status"]) for d in expected["definitions"]] == [("OrderWorkflow", "changed")]
    assert "TMP105" in {f["rule"] for f in expected["findings"]}
    outcomes = {Path(r["history"]).name: r["outcome"] for r in expected["replay"]}
    assert outcomes == {
        "order-1001.json": "nondeterminism",
        "order-1002.json": "nondeterminism",
        "order-1003.json": "ok",
    }
    code_packaged, report, _ = reports["packaged"]
    assert code_packaged == code
    assert essence(report) == essence(expected)


def test_readme_only_change_names_every_history_and_replay_all_replays_them(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        tree("base", **{"README.md": "Orders.\n"}),
        tree("base", **{"README.md": "The order service.\n"}),
    )
    path = Path(repo.working_dir)
    code, report, stderr = check(path)
    assert code == 0
    assert report["definitions"] == []
    reason = "not replayed: this change alters no Temporal workflow (pass --replay-all)"
    assert {Path(r["history"]).name: (r["outcome"], r["message"]) for r in report["replay"]} == dict.fromkeys(
        NAMES, ("skipped", reason)
    )
    assert report["replay_summary"]["counts"] == {"skipped": 3}
    assert (
        "no definition changed: 3 histories not replayed (pass --replay-all)"
        in report["replay_summary"]["notes"]
    )
    assert "inflight-guard: replay: 3 histories in" in stderr and ": 3 skipped" in stderr

    _, markdown, _ = check(path, fmt="markdown")
    assert "Replayed 0 of 3 histories" in markdown
    # Named as reports name a history: never the machine's absolute path.
    named = ", ".join(f"`{display_path(f'{HISTORIES}/{n}')}`" for n in NAMES)
    assert f"- 3 skipped — {reason}: {named}\n" in markdown
    assert "- note: no definition changed: 3 histories not replayed (pass --replay-all)\n" in markdown

    code, everything, stderr = check(path, "--replay-all")
    assert code == 0
    assert everything["replay_summary"]["counts"] == {"ok": 3}
    assert {
        Path(r["history"]).name: (r["outcome"], r["workflow_type"], r["open"]) for r in everything["replay"]
    } == {
        "order-1001.json": ("ok", "OrderWorkflow", False),
        "order-1002.json": ("ok", "OrderWorkflow", True),
        "order-1003.json": ("ok", "OrderWorkflow", True),
    }
    assert not [n for n in everything["replay_summary"]["notes"] if "not replayed" in n]
    assert ": 3 ok" in stderr


def test_histories_of_other_definitions_and_engines_are_named_with_the_reason(tmp_path: Path) -> None:
    """Only RefundWorkflow changes: the Order histories are not affected, the Cadence export has no
    changed Cadence workflow. Each is a line of the JSON report and of the comment."""
    histories = tmp_path / "histories"
    shutil.copytree(HISTORIES, histories)
    shutil.copy(CADENCE_EXPORT, histories / "cadence-order.json")
    head_refunds = REFUNDS.replace(
        "        return await",
        "        await workflow.execute_activity(reserve_inventory, order_id, start_to_close_timeout=STEP)\n"
        "        return await",
    )
    repo = make_repo(
        tmp_path / "repo",
        tree("base", **{"orders/refunds.py": REFUNDS}),
        tree("base", **{"orders/refunds.py": head_refunds}),
    )
    code, report, _ = check(Path(repo.working_dir), histories=histories)
    assert [d["id"] for d in report["definitions"]] == ["RefundWorkflow"]
    # The supplied histories, each named; RefundWorkflow, which none covers, is synthesized from base.
    lines = {Path(r["history"]).name: r for r in report["replay"] if not r["synthesized"]}
    assert sorted(lines) == ["cadence-order.json", *NAMES]
    assert any(r["synthesized"] and r["workflow_type"] == "RefundWorkflow" for r in report["replay"])
    for name in NAMES:
        assert (lines[name]["outcome"], lines[name]["workflow_type"], lines[name]["message"]) == (
            "skipped",
            "OrderWorkflow",
            "not affected by this change (pass --replay-all to replay it)",
        )
    cadence = lines["cadence-order.json"]
    assert (cadence["outcome"], cadence["message"]) == (
        "skipped",
        "not replayed: this change alters no Cadence workflow (pass --replay-all)",
    )
    assert report["replay_summary"]["counts"] == {"skipped": 4}
    assert (
        "none of the 4 histories was replayed (4 skipped): each result says why"
        in report["replay_summary"]["notes"]
    )
    assert code == 1  # the ungated insertion is breaking whatever replay could show

    _, markdown, _ = check(Path(repo.working_dir), histories=histories, fmt="markdown")
    orders = ", ".join(f"`{display_path(f'{histories}/{n}')}`" for n in NAMES)
    assert (
        f"- 3 skipped — `OrderWorkflow`: not affected by this change (pass --replay-all to replay it): {orders}\n"
        in markdown
    )
    assert (
        "- 1 skipped — not replayed: this change alters no Cadence workflow (pass --replay-all): "
        f"`{display_path(f'{histories}/cadence-order.json')}`\n"
    ) in markdown


def test_static_only_run_names_the_sources_it_did_not_replay(tmp_path: Path) -> None:
    repo = build_repo(tmp_path / "demo")
    report = run_check(
        CheckOptions(
            repo=repo, base="main", replay=ReplayOptions(sources=[str(HISTORIES)]), run_pr_code=False
        )
    )
    assert report.replay_summary is None and report.replay == []
    assert f"histories not replayed: {HISTORIES} (static analysis only)" in report.notes
