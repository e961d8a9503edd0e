"""Step Functions in a repository of many apps (issue 18): each change is judged within its own stack,
cross-stack links go only through names the repository deploys, and a file broken before the change
is a note, not this change's error. Real git repositories (tests/gitrepo.py), the real pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

from fixture_harness import explain
from gitrepo import make_repo
from sfn_monorepo import ACTIVITY, app_files, child_asl, monorepo

from bot.config import Config
from bot.engines.airflow import _workflow_definition
from bot.model import Report
from bot.pipeline import CheckOptions, analyze, run_check
from bot.repo import SourceTree, changed_files, open_repo

APPS = 4


def _check(tmp_path: Path, head_changes: dict[str, str]) -> Report:
    base = monorepo(APPS)
    repo = make_repo(tmp_path / "repo", base, {**base, **head_changes})
    return run_check(CheckOptions(repo=Path(repo.working_dir), base="main", head="HEAD"))


def _rules(report: Report) -> list[tuple[str, str, str]]:
    return sorted(
        (f.rule, f.location.path if f.location else "", f.definition or "")
        for f in report.findings
        if not f.suppressed
    )


def test_a_comment_only_edit_of_a_child_is_safe_in_its_app_and_silent_in_the_others(tmp_path: Path) -> None:
    # app0001's child is called unqualified through !GetAtt by its parent; the Comment changes nothing.
    report = _check(tmp_path, {"app0001/statemachines/child.asl.json": child_asl(comment="bills the card")})
    assert _rules(report) == [], explain(report)
    assert report.verdict.level.value == "safe", explain(report)


def test_a_comment_inside_a_choice_rule_is_not_a_routing_change(tmp_path: Path) -> None:
    changed = app_files("app0002", rule_comment="the express lane")["app0002/template.yaml"]
    report = _check(tmp_path, {"app0002/template.yaml": changed})
    assert "SFN105" not in [r for r, _, _ in _rules(report)], explain(report)
    assert report.verdict.level.value == "safe", explain(report)


def test_a_real_child_change_reaches_its_own_parent_only(tmp_path: Path) -> None:
    # The parent of app0001 starts its child unqualified: running parents start the new child.
    report = _check(tmp_path, {"app0001/statemachines/child.asl.json": child_asl(wait=30)})
    found = _rules(report)
    sfn120 = [(p, d) for r, p, d in found if r == "SFN120"]
    assert sfn120 == [("app0001/template.yaml", "ParentStateMachine")], explain(report)
    # Same logical ids in app0000, app0002, app0003: not linked across stacks.
    assert not [p for r, p, _ in found if not p.startswith("app0001/")], explain(report)
    # The parent's reference did not change: no SFN121 for it.
    assert "SFN121" not in [r for r, _, _ in found], explain(report)


def test_function_code_change_reaches_callers_in_its_stack_and_by_literal_name(tmp_path: Path) -> None:
    code = "def handler(event, context):\n    return {'charged': True, 'receipt': event['id']}\n"
    report = _check(tmp_path, {"app0000/functions/charge/app.py": code})
    sfn120 = sorted((p, d) for r, p, d in _rules(report) if r == "SFN120")
    assert sfn120 == [
        ("app0000/template.yaml", "ChildStateMachine"),
        ("billing/flows/charge.asl.json", "charge"),
    ], explain(report)
    assert report.verdict.level.value == "breaking", explain(report)


def test_a_definition_file_inside_a_code_folder_is_not_the_function_code(tmp_path: Path) -> None:
    base_extra = {"app0003/functions/charge/flow.asl.json": child_asl()}
    base = {**monorepo(APPS), **base_extra}
    repo = make_repo(
        tmp_path / "repo", base, {**base, "app0003/functions/charge/flow.asl.json": child_asl("another note")}
    )
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main", head="HEAD"))
    assert _rules(report) == [], explain(report)
    assert report.verdict.level.value == "safe", explain(report)


def test_an_activity_whose_name_changes_is_replaced_under_running_executions(tmp_path: Path) -> None:
    report = _check(tmp_path, {"review/template.yaml": ACTIVITY.format(name="review-v2")})
    [finding] = [f for f in report.findings if f.rule == "SFN122"]
    assert finding.location is not None and finding.location.path == "review/template.yaml"
    assert (
        finding.location.line == ACTIVITY.splitlines().index("            Resource: !Ref ReviewActivity") + 1
    )
    assert "review-v1" in finding.message and "review-v2" in finding.message, finding.message
    assert report.verdict.level.value == "breaking", explain(report)


def test_a_file_broken_in_base_and_head_alike_is_a_note(tmp_path: Path) -> None:
    # The change sits next to the broken template, so the check reaches it; it fails the same way.
    report = _check(tmp_path, {"legacy/README.md": "Legacy app, read-only.\n"})
    [note] = [f for f in report.findings if f.rule == "SFN003"]
    assert note.severity.value == "info" and note.location is not None
    # The YAML parser stops at the end of the file, where the flow mapping is still open.
    assert (note.location.path, note.location.line) == ("legacy/template.yaml", 7), explain(report)
    assert report.verdict.level.value == "safe", explain(report)


def test_a_file_the_change_breaks_is_still_an_error(tmp_path: Path) -> None:
    broken = app_files("app0002")["app0002/template.yaml"].replace("Default: Done", "Default: [Done")
    report = _check(tmp_path, {"app0002/template.yaml": broken})
    assert [r for r, _, _ in _rules(report)] == ["SFN001"], explain(report)
    assert report.verdict.level.value == "error", explain(report)


def test_a_definition_loaded_from_another_folder_is_its_template_s(tmp_path: Path) -> None:
    # stacks/orders/template.yaml loads ../../shared/flows/child.asl.json: a folder the change is not under.
    template = app_files("x")["x/template.yaml"].replace(
        "statemachines/child.asl.json", "../../shared/flows/child.asl.json"
    )
    base = {
        **monorepo(APPS),
        "stacks/orders/template.yaml": template,
        "shared/flows/child.asl.json": child_asl(),
    }
    repo = make_repo(tmp_path / "repo", base, {**base, "shared/flows/child.asl.json": child_asl(wait=30)})
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main", head="HEAD"))
    assert [(d.id, d.path) for d in report.definitions if d.status == "changed"] == [
        ("ChildStateMachine", "stacks/orders/template.yaml")
    ], explain(report)
    assert sorted(r for r, _, _ in _rules(report)) == ["SFN118", "SFN120"], explain(report)


NAMED_CHILD = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  ChildStateMachine:
    Type: AWS::StepFunctions::StateMachine
    Properties:
      StateMachineName: orders-child
      RoleArn: arn:aws:iam::123456789012:role/flows
      Definition:
        StartAt: Settle
        States:
          Settle:
            Type: Wait
            Seconds: {seconds}
            End: true
"""


def _starter(arn: str) -> str:
    return json.dumps(
        {
            "StartAt": "Run",
            "States": {
                "Run": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::states:startExecution.sync:2",
                    "Parameters": {"StateMachineArn": arn, "Input.$": "$"},
                    "End": True,
                }
            },
        },
        indent=2,
    )


def test_a_child_named_by_literal_arn_in_another_folder_is_linked_by_its_state_machine_name(
    tmp_path: Path,
) -> None:
    base = {
        **monorepo(APPS),
        "orders/child/template.yaml": NAMED_CHILD.format(seconds=5),
        "shipping/flows/ship.asl.json": _starter(
            "arn:aws:states:us-east-1:123456789012:stateMachine:orders-child"
        ),
        "billing/flows/other.asl.json": _starter(
            "arn:aws:states:us-east-1:123456789012:stateMachine:another"
        ),
    }
    repo = make_repo(
        tmp_path / "repo", base, {**base, "orders/child/template.yaml": NAMED_CHILD.format(seconds=50)}
    )
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main", head="HEAD"))
    found = _rules(report)
    assert [(p, d) for r, p, d in found if r == "SFN120"] == [("shipping/flows/ship.asl.json", "ship")], (
        explain(report)
    )
    assert ("SFN118", "orders/child/template.yaml", "orders-child") in found, explain(report)


def test_folder_names_are_paths_not_pathspec_magic(tmp_path: Path) -> None:
    # A pull request names its folders: `:(exclude)` must not turn the listing of the folder above a
    # changed file into "everything but it" (which would miss the template that deploys the code).
    app = ":(exclude)flows"
    base = {**monorepo(APPS), **app_files(app)}
    code = "def handler(event, context):\n    return {'charged': False}\n"
    repo = make_repo(tmp_path / "repo", base, {**base, f"{app}/functions/charge/app.py": code})
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main", head="HEAD"))
    assert [(r, p) for r, p, _ in _rules(report)] == [("SFN120", f"{app}/template.yaml")], explain(report)


def test_a_function_s_description_is_not_its_contract_but_its_environment_is(tmp_path: Path) -> None:
    template = app_files("app0000")["app0000/template.yaml"]
    described = template.replace(
        "      Runtime: python3.12\n", "      Runtime: python3.12\n      Description: charges\n", 1
    )
    report = _check(tmp_path / "one", {"app0000/template.yaml": described})
    assert _rules(report) == [], explain(report)
    env = template.replace(
        "      Runtime: python3.12\n",
        "      Runtime: python3.12\n      Environment:\n        Variables: {MODE: strict}\n",
        1,
    )
    report = _check(tmp_path / "two", {"app0000/template.yaml": env})
    assert sorted((r, d) for r, _, d in _rules(report)) == [
        ("SFN120", "ChildStateMachine"),
        ("SFN120", "charge"),
    ], explain(report)


def test_a_definition_string_unreadable_before_and_after_is_a_note(tmp_path: Path) -> None:
    # The template changes elsewhere; its DefinitionString was already not JSON, the same way.
    template = (
        'AWSTemplateFormatVersion: "2010-09-09"\nDescription: one\nResources:\n  Flow:\n'
        "    Type: AWS::StepFunctions::StateMachine\n    Properties:\n"
        "      RoleArn: arn:aws:iam::123456789012:role/flows\n"
        '      DefinitionString: \'{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}\'\n'
    )
    base = monorepo(APPS)
    repo = make_repo(
        tmp_path / "again",
        {**base, "flows/template.yaml": template},
        {**base, "flows/template.yaml": template.replace("Description: one", "Description: two")},
    )
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main", head="HEAD"))
    assert [(r, p) for r, p, _ in _rules(report)] == [("SFN003", "flows/template.yaml")], explain(report)
    assert report.verdict.level.value == "safe", explain(report)


def test_a_change_of_no_python_file_lists_no_tree(tmp_path: Path) -> None:
    # Every engine (Airflow, Temporal, Cadence, Step Functions) sees this change; none may list a
    # whole tree to judge it: what they read follows the changed files (issue 18, performance).
    base = monorepo(APPS)
    odd = {"app0002/:(glob)*/notes.yaml": "Resources: {}\n"}  # a path that reads as pathspec magic
    repo = make_repo(
        tmp_path / "repo",
        {**base, **odd},
        {**base, **odd, "app0001/statemachines/child.asl.json": child_asl(wait=30)},
    )
    git_repo = open_repo(Path(repo.working_dir))
    trees = [
        SourceTree(git_repo, git_repo.commit(ref), side) for ref, side in (("main", "base"), ("HEAD", "head"))
    ]
    analyses = analyze(trees[0], trees[1], changed_files(trees[0].commit, trees[1].commit), Config())
    sfn = next(a for a in analyses if a.engine == "stepfunctions")
    assert [c.kind for c in sfn.changes if c.kind.startswith("sfn.reference")], sfn.changes
    assert [t.side for t in trees if "_entries" in t.__dict__] == [], "a tree was listed whole"
    # Files are still found one at a time, by path (never as a pattern).
    assert trees[1].read("app0002/:(glob)*/notes.yaml") == "Resources: {}\n"
    assert not trees[1].has_file("app0002/*/notes.yaml")
    assert not trees[1].has_file("../app0002/template.yaml")


def test_a_state_machine_file_is_not_searched_for_in_dag_files(tmp_path: Path) -> None:
    # Airflow looks for the Python files naming a changed data file (a DAG built from `pipelines.yaml`):
    # one search of the whole repository. A state machine's template or ASL file is the Step Functions
    # engine's and never drives a DAG's shape, so a template edit makes no such search.
    files = {
        "app/template.yaml": "Resources:\n  M:\n    Type: AWS::Serverless::StateMachine\n",
        "app/flow.asl.json": '{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}',
        "dags/pipelines.yaml": "steps: [a, b]\n",
        "ops/stack.yaml": "Resources:\n  M:\n    Type: AWS::StepFunctions::StateMachine\n",
    }
    head = {
        **files,
        "app/template.yaml": files["app/template.yaml"] + "  Q:\n    Type: AWS::SQS::Queue\n",
        "ops/stack.yaml": "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
        # The pull request writes the marker into a DAG's data file, and adds a file named like ASL.
        "dags/pipelines.yaml": "# Type: AWS::StepFunctions::StateMachine\nsteps: [a, b, c]\n",
        "dags/more.asl.json": '{"StartAt": "A"}',
    }
    repo = make_repo(tmp_path / "repo", files, head)
    git_repo = open_repo(Path(repo.working_dir))
    trees = (
        SourceTree(git_repo, git_repo.commit("main"), "base"),
        SourceTree(git_repo, git_repo.commit("HEAD"), "head"),
    )
    assert _workflow_definition(trees, "app/template.yaml")
    assert _workflow_definition(trees, "app/flow.asl.json")
    # Base did not hold it as a definition, or the change adds it: searched for like any data file.
    assert not _workflow_definition(trees, "dags/pipelines.yaml")
    assert not _workflow_definition(trees, "dags/more.asl.json")
    # No longer a state machine on one side: it may be anything now, so it is searched for.
    assert not _workflow_definition(trees, "ops/stack.yaml")
