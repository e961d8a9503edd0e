"""Configuration: where it is read from, every section's effect, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import git
from cli_support import invoke
from gitrepo import commit, make_repo
from sources import BASE, BREAKING

from bot.pipeline import CheckOptions, run_check

CONFIG = ".github/inflight-guard.yml"


def _setup(tmp_path: Path, config_text: str) -> tuple[Path, Path]:
    """Return (repo with the breaking change, config file holding `config_text`)."""
    repo = make_repo(tmp_path / "repo", BASE, BREAKING)
    config = tmp_path / "ig.yml"
    config.write_text(config_text)
    return Path(repo.working_dir), config


def _report(repo: Path, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    # Static: the rules config governs; synthesis (its own locked rule) is tests/test_synthesis.py's.
    run = invoke("check", "--repo", repo, "--format", "json", "--synthesize", "off", *args)
    assert run.stdout, run.stderr
    return run.exit_code, json.loads(run.stdout)


def test_config_comes_from_the_base_branch_not_the_pr(tmp_path: Path) -> None:
    weakened = {**BREAKING, CONFIG: "rules:\n  disable: [TMP101]\n"}
    repo = make_repo(tmp_path / "repo", BASE, weakened)
    code, report = _report(Path(repo.working_dir))
    assert code == 1
    assert [f["rule"] for f in report["findings"]] == ["TMP101", "IG003"]
    assert report["notes"][0] == "config: defaults"


def test_base_branch_config_applies(tmp_path: Path) -> None:
    base = {**BASE, CONFIG: "rules:\n  severity:\n    command-inserted-ungated: risky\n"}
    repo = make_repo(tmp_path / "repo", base, {**BREAKING, CONFIG: base[CONFIG]})
    code, report = _report(Path(repo.working_dir))
    assert code == 0
    assert [(f["rule"], f["severity"]) for f in report["findings"]] == [("TMP101", "risky")]
    assert report["verdict"]["level"] == "safe_with_gates"
    assert report["notes"][0].startswith(f"config: {CONFIG} (base ")


def test_disable_by_slug_with_config_file(tmp_path: Path) -> None:
    root, config = _setup(tmp_path, "rules:\n  disable: [command-inserted-ungated]\n")
    code, report = _report(root, "--config", str(config))
    assert code == 0
    assert report["findings"] == []


def test_unknown_key_names_file_and_line(tmp_path: Path) -> None:
    root, config = _setup(tmp_path, "version: 1\ntemporal:\n  namespace: prod\n  stratgy: patch\n")
    run = invoke("check", "--repo", root, "--config", config, "--synthesize", "off")
    assert run.exit_code == 2
    assert (
        run.stderr.strip()
        == f"inflight-guard: error: {config}:4: temporal.stratgy: Extra inputs are not permitted"
    )


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    root, config = _setup(tmp_path, "rules:\n  disable: [TMP101\n")
    run = invoke("check", "--repo", root, "--config", config, "--synthesize", "off")
    assert run.exit_code == 2
    assert run.stderr.startswith(f"inflight-guard: error: {config}:3: invalid YAML")


def test_unknown_rule_in_config(tmp_path: Path) -> None:
    root, config = _setup(tmp_path, "rules:\n  severity:\n    TMP999: info\n")
    run = invoke("check", "--repo", root, "--config", config, "--synthesize", "off")
    assert run.exit_code == 2
    assert "unknown rule(s) TMP999" in run.stderr


def test_extra_rule_pack_from_the_base_tree(tmp_path: Path) -> None:
    pack = """engine: temporal
rules:
  - id: ORG101
    slug: charge-options-changed
    severity: breaking
    match: [temporal.command.options_changed]
    when: {details: {name: charge}}
    title: Payment options changed
    message: "`{name}` options changed {where}: {options}"
    why: Payment timeouts are agreed with the provider.
    fix: Talk to payments first.
"""
    base = {**BASE, CONFIG: "rules:\n  packs: [.github/our-rules.yaml]\n", ".github/our-rules.yaml": pack}
    head = dict(base)
    head["app/workflows.py"] = base["app/workflows.py"].replace(
        "execute_activity(charge, order_id, start_to_close_timeout=T)",
        "execute_activity(charge, order_id, start_to_close_timeout=T, task_queue='payments')",
    )
    repo = make_repo(tmp_path / "repo", base, head)
    code, report = _report(Path(repo.working_dir))
    assert code == 1
    org = [f for f in report["findings"] if f["rule"] == "ORG101"]
    assert [f["message"] for f in org] == ["`charge` options changed in `run()`: task_queue"]


def test_paths_exclude(tmp_path: Path) -> None:
    root, config = _setup(tmp_path, "paths:\n  exclude: ['app/*']\n")
    code, report = _report(root, "--config", str(config))
    assert code == 0
    assert report["definitions"] == []


def test_paths_include(tmp_path: Path) -> None:
    root, config = _setup(tmp_path, "paths:\n  include: ['services/*']\n")
    assert _report(root, "--config", str(config))[0] == 0
    config.write_text("paths:\n  include: ['app/*']\n")
    assert _report(root, "--config", str(config))[0] == 1


def test_declared_drain_satisfies_the_version_gate(tmp_path: Path) -> None:
    root, config = _setup(tmp_path, "drained: [OrderWorkflow]\n")
    code, report = _report(root, "--config", str(config))
    assert code == 0
    assert report["verdict"]["level"] == "safe_with_gates"
    [gate] = [g for g in report["gates"] if g["kind"] == "version_gate"]
    assert gate == {
        "kind": "version_gate",
        "definition": "OrderWorkflow",
        "status": "satisfied",
        "evidence": "declared drained in the config",
        "satisfied": True,
    }


def test_on_error_pass(tmp_path: Path) -> None:
    broken = {**BREAKING, "app/workflows.py": BREAKING["app/workflows.py"].replace("):\n", ")\n", 1)}
    repo = make_repo(tmp_path / "repo", BASE, broken)
    config = tmp_path / "ig.yml"
    config.write_text("on_error: pass\n")
    code, report = _report(Path(repo.working_dir), "--config", str(config))
    assert [f["rule"] for f in report["findings"]] == ["TMP001"]
    assert report["verdict"]["level"] == "safe"
    assert code == 0
    assert _report(Path(repo.working_dir))[0] == 2


def test_file_over_the_size_limit_is_an_error_finding(tmp_path: Path) -> None:
    root, config = _setup(tmp_path, "limits:\n  max_file_bytes: 200\n")
    code, report = _report(root, "--config", str(config))
    assert code == 2
    assert [(f["rule"], f["location"]["side"]) for f in report["findings"]] == [
        ("TMP001", "base"),
        ("TMP001", "head"),
    ]
    assert all("over the 200-byte limit" in f["message"] for f in report["findings"])


def test_non_utf8_workflow_file_is_an_error_finding(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", BASE, BASE)
    bad = Path(repo.working_dir) / "app" / "workflows.py"
    bad.write_bytes(BREAKING["app/workflows.py"].encode() + b"# caf\xe9\n")
    repo.git.add("--all")
    repo.index.commit("latin-1 comment")
    code, report = _report(Path(repo.working_dir))
    assert code == 2
    assert "not valid utf-8 text (byte 675)" in report["findings"][0]["message"]


def test_worker_versioning_strategy_pins_first_and_changes_later(tmp_path: Path) -> None:
    root, config = _setup(tmp_path, "temporal:\n  strategy: worker-versioning\n  deployment_name: orders\n")
    repo = git.Repo(root)
    report = run_check(CheckOptions(repo=root, base="main", config=config, synthesize="off"))
    assert "+@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)" in report.plan.outline
    assert "+from temporalio.common import VersioningBehavior" in report.plan.outline
    assert "ship the PINNED declaration" in report.plan.runbook[0]
    assert any("set-ramping-version" in step and "orders" in step for step in report.plan.runbook)
    # Pinning in the same change does not protect the unversioned executions already open.
    _apply(repo, report.plan.outline)
    same_pr = run_check(CheckOptions(repo=root, base="main", config=config, synthesize="off"))
    assert sorted(f.rule for f in same_pr.findings) == ["TMP101", "TMP119"]
    assert same_pr.verdict.level.value == "breaking"
    # Pinned first (merged), the change afterwards: pinned executions stay on their build.
    pinned = (root / "app" / "workflows.py").read_text()
    repo.git.checkout("main")
    commit(
        repo,
        {
            **BASE,
            "app/workflows.py": pinned.replace(
                "        await workflow.execute_activity(fraud_check, order_id, start_to_close_timeout=T)\n",
                "",
            ),
        },
        "pin OrderWorkflow",
    )
    repo.git.checkout("-b", "later")
    commit(repo, {**BREAKING, "app/workflows.py": pinned}, "insert fraud check")
    later = run_check(CheckOptions(repo=root, base="main", config=config, synthesize="off"))
    assert [f.rule for f in later.findings] == ["TMP120"]
    assert later.verdict.level.value == "safe_with_gates"


def test_new_type_strategy_outline_keeps_the_old_type(tmp_path: Path) -> None:
    root, config = _setup(tmp_path, "temporal:\n  strategy: new-type\n")
    repo = git.Repo(root)
    report = run_check(CheckOptions(repo=root, base="main", config=config, synthesize="off"))
    assert '+@workflow.defn(name="OrderWorkflowV2")' in report.plan.outline
    assert "+class OrderWorkflowV2:" in report.plan.outline
    _apply(repo, report.plan.outline)
    again = run_check(CheckOptions(repo=root, base="main", config=config, synthesize="off"))
    assert [(f.rule, f.definition) for f in again.findings] == [("TMP126", "OrderWorkflowV2")]
    assert again.verdict.level.value == "safe"


def _apply(repo, outline: str) -> None:  # type: ignore[no-untyped-def]
    patch = Path(repo.working_dir) / ".outline.patch"
    patch.write_text(outline)
    repo.git.apply(str(patch))
    patch.unlink()
    files = {
        str(p.relative_to(repo.working_dir)): p.read_text()
        for p in Path(repo.working_dir).rglob("*.py")
        if ".git" not in p.parts
    }
    commit(repo, files, "apply outline")


def test_invalid_rule_pack_names_file_and_line(tmp_path: Path) -> None:
    pack = "engine: temporal\nrules:\n  - id: ORG101\n    slug: x\n    severity: fatal\n"
    base = {**BASE, CONFIG: "rules:\n  packs: [.github/our-rules.yaml]\n", ".github/our-rules.yaml": pack}
    repo = make_repo(
        tmp_path / "repo", base, {**BREAKING, CONFIG: base[CONFIG], ".github/our-rules.yaml": pack}
    )
    run = invoke("check", "--repo", repo.working_dir)
    assert run.exit_code == 2
    assert run.stderr.startswith(
        "inflight-guard: error: .github/our-rules.yaml:5: rules.0.severity: Input should be"
    )
