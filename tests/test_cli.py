"""The CLI contract, on real git repositories built in temp dirs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import git
import pytest
import typer
from cli_support import invoke, run_process
from gitrepo import commit, make_repo
from sources import BASE, BREAKING, app_files

from bot.cli import app


@pytest.fixture
def breaking_repo(tmp_path: Path) -> Path:
    return Path(make_repo(tmp_path / "repo", BASE, BREAKING).working_dir)


def test_help_lists_every_command() -> None:
    run = invoke("--help")
    assert run.exit_code == 0
    for command in ("check", "rules", "explain", "demo", "schema"):
        assert command in run.stdout
    group = typer.main.get_command(app)
    assert set(group.commands) == {"check", "rules", "explain", "demo", "schema", "merge", "export", "action"}  # type: ignore[attr-defined]


def test_check_help_documents_options_and_exit_codes() -> None:
    run = invoke("check", "--help")
    assert run.exit_code == 0
    for option in ("--repo", "--base", "--head", "--histories", "--format", "--output", "--config"):
        assert option in run.stdout
    assert "1 breaking" in run.stdout


def test_breaking_change_exits_1_with_the_finding(breaking_repo: Path) -> None:
    run = invoke("check", "--repo", breaking_repo)
    assert run.exit_code == 1
    assert "TMP101" in run.stdout
    assert "`app/workflows.py:16`" in run.stdout
    assert "inflight-guard: breaking" in run.stderr


def test_safe_change_exits_0(tmp_path: Path) -> None:
    head = app_files("reserve", "charge", "ship", extra={"README.md": "docs\n"})
    repo = make_repo(tmp_path / "repo", BASE, head)
    run = invoke("check", "--repo", repo.working_dir)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert "**safe**" in run.stdout


def test_default_base_is_the_merge_base_not_the_main_tip(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo", BASE, app_files("reserve", "charge", "ship", extra={"NOTES.md": "x\n"})
    )
    fork_point = repo.head.commit.parents[0].hexsha
    # main moves on after the branch was cut: if base were main's tip, the PR would appear to undo it.
    repo.git.checkout("main")
    commit(repo, BREAKING, "main inserts an activity")
    repo.git.checkout("feature")
    run = invoke("check", "--repo", repo.working_dir, "--format", "json")
    report = json.loads(run.stdout)
    assert run.exit_code == 0, run.stdout
    assert report["base"] == {"ref": "main", "sha": fork_point}
    assert report["findings"] == []


def test_head_on_the_default_branch_says_there_is_nothing_to_compare(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", BASE, BREAKING)
    repo.git.checkout("main")
    run = invoke("check", "--repo", repo.working_dir, "--format", "json")
    assert run.exit_code == 0
    assert (
        "head is the merge-base with `main`: nothing to compare (pass --base)"
        in json.loads(run.stdout)["notes"]
    )


def test_default_base_prefers_origin_head(tmp_path: Path) -> None:
    upstream = make_repo(tmp_path / "upstream", BASE, BASE, default="trunk")
    upstream.git.checkout("trunk")
    clone = git.Repo.clone_from(upstream.working_dir, tmp_path / "clone")
    clone.git.checkout("-b", "work")
    commit(clone, BREAKING, "insert fraud check")
    run = invoke("check", "--repo", clone.working_dir, "--format", "json")
    assert run.exit_code == 1
    assert json.loads(run.stdout)["base"]["ref"] == "origin/HEAD"


def test_default_base_falls_back_to_master(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", BASE, BREAKING, default="master")
    run = invoke("check", "--repo", repo.working_dir, "--format", "json")
    assert run.exit_code == 1
    assert json.loads(run.stdout)["base"]["ref"] == "master"


def test_no_default_branch_says_to_pass_base(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", BASE, BREAKING, default="trunk")
    run = invoke("check", "--repo", repo.working_dir)
    assert run.exit_code == 2
    assert "pass --base REF" in run.stderr
    assert run.stdout == ""


def test_missing_ref_names_the_fetch_to_run(breaking_repo: Path) -> None:
    run = invoke("check", "--repo", breaking_repo, "--base", "origin/release-7")
    assert run.exit_code == 2
    assert run.stderr.strip().splitlines() == [
        f"inflight-guard: error: ref 'origin/release-7' not found in {breaking_repo}; "
        "fetch it first: git fetch origin release-7"
    ]


def test_not_a_repository(tmp_path: Path) -> None:
    run = invoke("check", "--repo", tmp_path)
    assert run.exit_code == 2
    assert "not a git repository" in run.stderr


def test_shallow_clone_without_the_base_ref(breaking_repo: Path, tmp_path: Path) -> None:
    clone = git.Repo.clone_from(f"file://{breaking_repo}", tmp_path / "shallow", depth=1, branch="feature")
    run = invoke("check", "--repo", clone.working_dir, "--base", "origin/main")
    assert run.exit_code == 2
    assert "git fetch origin main" in run.stderr
    assert "shallow clone" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_shallow_clone_without_common_history(breaking_repo: Path, tmp_path: Path) -> None:
    clone = git.Repo.clone_from(
        f"file://{breaking_repo}", tmp_path / "shallow", depth=1, branch="feature", no_single_branch=True
    )
    run = invoke("check", "--repo", clone.working_dir, "--base", "origin/main")
    assert run.exit_code == 2
    assert "shallow clone" in run.stderr
    assert "git fetch --unshallow" in run.stderr


def test_syntax_error_in_head_is_a_finding_with_its_line(tmp_path: Path) -> None:
    broken = dict(BREAKING)
    broken["app/workflows.py"] = broken["app/workflows.py"].replace(
        "async def run(self", "async def run(self,,"
    )
    repo = make_repo(tmp_path / "repo", BASE, broken)
    run = invoke("check", "--repo", repo.working_dir, "--format", "json")
    assert run.exit_code == 2
    report = json.loads(run.stdout)
    assert report["verdict"]["level"] == "error"
    [finding] = report["findings"]
    assert finding["rule"] == "TMP001"
    assert finding["location"] == {"path": "app/workflows.py", "line": 14, "end_line": None, "side": "head"}
    assert "syntax error" in finding["message"]
    assert "Traceback" not in run.stderr


def test_working_tree_and_index_are_never_touched(breaking_repo: Path) -> None:
    repo = git.Repo(breaking_repo)
    workflows = breaking_repo / "app" / "workflows.py"
    workflows.write_text(BASE["app/workflows.py"])  # uncommitted revert of the breaking change
    (breaking_repo / "scratch.py").write_text("x = 1\n")
    repo.git.add("scratch.py")
    before = (repo.git.status("--porcelain"), workflows.read_text(), repo.git.diff("--cached"))
    run = invoke("check", "--repo", breaking_repo)
    assert run.exit_code == 1  # head is the commit, not the edited work tree
    assert (repo.git.status("--porcelain"), workflows.read_text(), repo.git.diff("--cached")) == before


def test_missing_history_source_is_one_line(breaking_repo: Path) -> None:
    run = invoke("check", "--repo", breaking_repo, "--histories", "exports/")
    assert run.exit_code == 2
    assert run.stderr.strip() == "inflight-guard: error: --histories exports/: no such file or folder"


def test_output_file(breaking_repo: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.json"
    run = invoke("check", "--repo", breaking_repo, "--format", "json", "--output", target)
    assert run.exit_code == 1
    assert run.stdout == ""
    assert json.loads(target.read_text())["verdict"]["level"] == "breaking"


def test_unknown_format_is_a_usage_error(breaking_repo: Path) -> None:
    run = invoke("check", "--repo", breaking_repo, "--format", "xml")
    assert run.exit_code == 2


def test_head_ref_option(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", BASE, BREAKING)
    repo.git.checkout("main")
    run = invoke("check", "--repo", repo.working_dir, "--base", "main", "--head", "feature")
    assert run.exit_code == 1
    assert "TMP101" in run.stdout


def test_rules_lists_every_rule() -> None:
    from bot.policy import builtin_packs

    run = invoke("rules")
    assert run.exit_code == 0
    for pack in builtin_packs():
        for rule in pack.rules:
            assert rule.id in run.stdout


def test_explain_by_id_and_slug() -> None:
    by_id = invoke("explain", "TMP101")
    by_slug = invoke("explain", "command-inserted-ungated")
    assert by_id.exit_code == by_slug.exit_code == 0
    assert by_id.stdout == by_slug.stdout
    for section in ("What it reports", "Why it matters", "How to fix"):
        assert section in by_id.stdout


def test_explain_names_placeholders_everywhere() -> None:
    """`{name}` is filled in a finding; `explain` has no finding, so it names it as `<name>`."""
    from bot.policy import builtin_packs

    for pack in builtin_packs():
        for rule in pack.rules:
            run = invoke("explain", rule.id)
            assert run.exit_code == 0, rule.id
            assert not re.search(r"\{\w+\}", run.stdout.replace("```python", "").split("### Example")[0]), (
                rule.id
            )


def test_rules_for_an_unknown_engine_is_an_error() -> None:
    run = invoke("rules", "--engine", "nope")
    assert run.exit_code == 2
    assert "no engine 'nope': one of airflow, cadence" in run.stderr
    assert invoke("rules", "--engine", "cadence").exit_code == 0


def test_rules_fit_an_80_column_terminal() -> None:
    run = run_process("rules", "--engine", "temporal", env={"COLUMNS": "80"})
    assert run.exit_code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    # Ids, severities and slugs never wrap: each rule is found whole on one line.
    assert any(re.search(r"TMP101 .* breaking .* command-inserted-ungated", line) for line in lines)


def test_explain_unknown_rule_suggests() -> None:
    run = invoke("explain", "TMP10")
    assert run.exit_code == 2
    assert "did you mean" in run.stderr


def test_version() -> None:
    run = invoke("--version")
    assert run.exit_code == 0
    assert run.stdout.startswith("inflight-guard ")


def test_demo_as_a_process_prints_a_breaking_verdict_and_the_patch() -> None:
    run = run_process("demo")
    assert run.exit_code == 0, run.stderr
    assert "inflight-guard: **breaking**" in run.stdout
    assert '+        if workflow.patched("order-workflow-check-fraud"):' in run.stdout
    assert "Traceback" not in run.stderr
    # The bundled histories replay against the head: which break, where, and why.
    assert "Replayed 3 of 3 histories (2 in flight, 1 closed) against head" in run.stdout
    assert (
        "| `histories/order-1002.json` | in flight | nondeterminism | 11 (activity charge-payment) "
        "| TMP101 at orders/workflows.py:29 |"
    ) in run.stdout
    assert "1 in-flight histories replay cleanly: not past this change yet" in run.stdout
    assert "histories/order-1003.json" in run.stdout
    assert "inflight-guard: replay: 3 histories" in run.stderr


def test_errors_never_print_a_traceback_as_a_process(tmp_path: Path) -> None:
    run = run_process("check", "--repo", tmp_path / "missing")
    assert run.exit_code == 2
    assert run.stderr.strip() == f"inflight-guard: error: {tmp_path / 'missing'}: no such directory"


def test_syntax_error_in_an_imported_helper_is_not_mistaken_for_removed_commands(tmp_path: Path) -> None:
    helper = (
        "from datetime import timedelta\n\nfrom temporalio import workflow\n\nfrom app.activities import charge\n\n\n"
        "async def do_charge(order_id: str) -> None:\n"
        "    await workflow.execute_activity(charge, order_id, start_to_close_timeout=timedelta(seconds=5))\n"
    )
    base = app_files("reserve", "ship", extra={"app/helpers.py": helper})
    base["app/workflows.py"] = (
        base["app/workflows.py"]
        .replace('        return "done"', '        await do_charge(order_id)\n        return "done"')
        .replace(
            "    from app.activities import",
            "    from app.helpers import do_charge\n    from app.activities import",
        )
    )
    head = {
        **base,
        "app/helpers.py": helper.replace(
            "async def do_charge(order_id: str) -> None:", "async def do_charge("
        ),
    }
    repo = make_repo(tmp_path / "repo", base, head)
    run = invoke("check", "--repo", repo.working_dir, "--format", "json")
    report = json.loads(run.stdout)
    assert run.exit_code == 2
    assert [(f["rule"], f["location"]["path"], f["location"]["line"]) for f in report["findings"]] == [
        ("TMP001", "app/helpers.py", 8)
    ]
