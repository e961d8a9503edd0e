"""Which supplied histories replay against head, whatever the repository's layout.

The demo's histories were recorded on a real Temporal dev server from the demo's base code
(order-1001 completed, order-1002 waiting past the charge, order-1003 before it); they replay here
with this interpreter's temporalio against real git repositories built from the demo example.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import git
import pytest
from cli_support import run_process
from gitrepo import ACTOR, make_repo

from bot.demo import BRANCH, EXAMPLE, HISTORIES, build_repo


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
        "plan": report["plan"],
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
