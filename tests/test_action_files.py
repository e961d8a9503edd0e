"""action.yml, the example workflows, this repository's CI and the workflow snippets in docs/:
pinned actions, no persisted credentials, per-PR concurrency, least privilege, fork safety, a venv
cache keyed by what built it, and GitHub's own schema (SchemaStore's, vendored by
tests/schemas/rebuild.sh)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import ROOT

# Third-party actions, each pinned by the commit its release tag points to. Source: the tags in the
# stored snapshots of the actions' own repositories (the search tool's `fetch` of
# github.com/actions/{checkout,setup-python,upload-artifact,download-artifact,cache} and
# github.com/aws-actions/configure-aws-credentials, `git rev-parse TAG^{commit}`, 2026-12-06),
# each SHA also found with the same tag in other public repositories (the search tool's
# `find_string`). github.com itself was not reachable. The latest release of each action's current
# major version; all run on node24.
PINS = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "actions/upload-artifact": ("bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
    "actions/download-artifact": ("3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", "v8.0.1"),
    "actions/cache": ("27d5ce7f107fe9357f9df03efb73ab90386fccae", "v5.0.5"),
    "aws-actions/configure-aws-credentials": ("e6de054238d6b7531b4efff3b6587d9aade6a06c", "v6.2.3"),
}
# The project states no repository owner: one coordinate everywhere, named in docs/github.md.
OWN = "inflight-guard/inflight-guard"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

ACTION = ROOT / "action.yml"
EXAMPLES = sorted((ROOT / "examples" / "workflows").glob("*.yml"))
WORKFLOWS = [*EXAMPLES, *sorted((ROOT / ".github" / "workflows").glob("*.yml"))]
SCHEMAS = ROOT / "tests" / "schemas"
PR_EVENTS = {"pull_request", "pull_request_target", "issue_comment", "workflow_run"}
# What a concurrency group may be keyed by to be per pull request.
PR_KEYS = (
    "github.event.pull_request.number",
    "github.event.issue.number",
    "github.event.workflow_run.head_branch",
    "github.event.workflow_run.head_sha",
)


def load(text: str) -> Any:
    data = yaml.safe_load(text)
    if isinstance(data, dict) and True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def doc_snippets() -> list[tuple[str, str]]:
    """The ```yaml blocks of docs/*.md and README.md that use an action: (where, text)."""
    out = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, block in enumerate(re.findall(r"```ya?ml\n(.*?)```", md.read_text(), re.S)):
            if "uses:" in block:
                out.append((f"{md.relative_to(ROOT)}#{i}", block))
    return out


SOURCES = {str(p.relative_to(ROOT)): p.read_text() for p in [ACTION, *WORKFLOWS]} | dict(doc_snippets())


def steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    if "runs" in data:
        return list(data["runs"].get("steps", []))
    jobs = data.get("jobs") or {k: v for k, v in data.items() if isinstance(v, dict) and "steps" in v}
    return [s for job in jobs.values() for s in job.get("steps", [])]


def events(data: dict[str, Any]) -> set[str]:
    on = data.get("on", {})
    return {on} if isinstance(on, str) else set(on)


def test_there_is_something_to_check() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"inflight-guard.yml", "inflight-guard-analyze.yml", "inflight-guard-publish.yml"} <= names
    assert "inflight-guard-commands.yml" in names
    assert any(name.startswith("docs/replay.md") for name in SOURCES)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_third_party_action_is_pinned_by_sha_with_its_tag(name: str) -> None:
    text = SOURCES[name]
    uses = [s["uses"] for s in steps(load(text)) if "uses" in s]
    assert uses, name
    for ref in uses:
        action, _, version = ref.partition("@")
        if action.startswith("./") or ref.startswith("docker://"):
            continue
        if action == OWN:
            assert version == f"v{VERSION}", f"{name}: {ref}: the action is {OWN}@v{VERSION} everywhere"
            continue
        repo = "/".join(action.split("/")[:2])
        assert re.fullmatch(r"[0-9a-f]{40}", version), f"{name}: {ref} is not pinned by a commit SHA"
        assert repo in PINS, f"{name}: {repo} has no recorded pin (add it to PINS with its source)"
        sha, tag = PINS[repo]
        assert version == sha, f"{name}: {ref}: expected {sha} ({tag})"
        # The tag in a trailing comment, on the same line.
        assert re.search(rf"uses: {re.escape(ref)} # {re.escape(tag)}\s*$", text, re.M), (
            f"{name}: {ref} needs the comment `# {tag}`"
        )
    assert "acme/inflight-guard" not in text
    # Not on PyPI: a `pip install inflight-guard` would take whatever holds that name there.
    assert not re.search(r"pip install\s+['\"]?inflight-guard\b(?!\s*@)", text), name


def test_the_coordinate_to_replace_is_named_in_the_docs() -> None:
    text = (ROOT / "docs" / "github.md").read_text()
    assert f"`{OWN}@v{VERSION}`" in text and f"replace `{OWN}`" in text


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_checkout_persists_no_credentials(name: str) -> None:
    for step in steps(load(SOURCES[name])):
        if step.get("uses", "").startswith("actions/checkout@"):
            options = step.get("with") or {}
            assert options.get("persist-credentials") is False, f"{name}: {step}"
            assert not options.get("allow-unsafe-pr-checkout"), f"{name}: {step}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_pr_workflows_have_a_per_pr_concurrency_group(path: Path) -> None:
    data = load(path.read_text())
    triggers = events(data) & PR_EVENTS
    if not triggers:
        pytest.skip("not triggered by a pull request")
    groups = [data["concurrency"]] if "concurrency" in data else []
    if not groups:  # else on every job
        groups = [job.get("concurrency") for job in data["jobs"].values()]
        assert all(groups), f"{path.name}: no concurrency group"
    for group in groups:
        key = group["group"]
        assert "${{ github.workflow }}" in key, f"{path.name}: {key} would collide with other workflows"
        assert any(k in key for k in PR_KEYS), f"{path.name}: {key} is not keyed per pull request"
        if triggers & {"issue_comment", "workflow_run"}:
            # A command or a publish is never cancelled half-way (and never for another PR).
            assert group.get("cancel-in-progress", False) is False, path.name


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_no_pr_code_is_checked_out_where_the_token_can_write(name: str) -> None:
    data = load(SOURCES[name])
    if not events(data) & {"pull_request_target", "workflow_run", "issue_comment"}:
        return
    for step in steps(data):
        if not step.get("uses", "").startswith("actions/checkout@"):
            continue
        options = step.get("with") or {}
        text = json.dumps(options)
        for bad in ("pull_request.head", "workflow_run.head", "refs/pull/", "github.head_ref"):
            assert bad not in text, f"{name}: checks out PR code: {options}"
        # The base repository's default branch only.
        assert options.get("ref") == "${{ github.event.repository.default_branch }}", f"{name}: {options}"
        assert "repository" not in options, f"{name}: {options}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_least_privilege(path: Path) -> None:
    data = load(path.read_text())
    top = data.get("permissions")
    assert isinstance(top, dict), f"{path.name}: set `permissions:` (GitHub's default can write)"
    assert all(v == "read" for v in top.values()), f"{path.name}: write permissions belong on the job"
    for job in data["jobs"].values():
        assert job.get("permissions", top) not in ("write-all", "read-all"), path.name


EXPECTED_PERMISSIONS = {
    "inflight-guard.yml": {"contents": "read", "pull-requests": "write", "statuses": "write"},
    "inflight-guard-oidc.yml": {
        "contents": "read",
        "id-token": "write",
        "pull-requests": "write",
        "statuses": "write",
    },
    "inflight-guard-analyze.yml": {"contents": "read", "pull-requests": "read"},
    "inflight-guard-publish.yml": {
        "actions": "read",
        "contents": "read",
        "pull-requests": "write",
        "statuses": "write",
    },
    "inflight-guard-commands.yml": {
        "actions": "write",  # /inflight replay re-runs the pull_request analysis run
        "contents": "read",
        "pull-requests": "write",
        "statuses": "write",
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PERMISSIONS))
def test_each_example_job_has_exactly_what_it_needs(name: str) -> None:
    data = load((ROOT / "examples" / "workflows" / name).read_text())
    assert data["permissions"] == {}
    [job] = data["jobs"].values()
    assert job["permissions"] == EXPECTED_PERMISSIONS[name]


def test_fork_safe_pair() -> None:
    folder = ROOT / "examples" / "workflows"
    analyze = load((folder / "inflight-guard-analyze.yml").read_text())
    publish = load((folder / "inflight-guard-publish.yml").read_text())
    # Analysis: pull_request only, read-only, no secrets, uploads the report.
    assert events(analyze) == {"pull_request"}
    assert "secrets." not in (folder / "inflight-guard-analyze.yml").read_text()
    [upload] = [s for s in steps(analyze) if s["uses"].startswith("actions/upload-artifact@")]
    mine = [s for s in steps(analyze) if s["uses"].startswith(OWN)]
    assert [s["with"]["mode"] for s in mine] == ["analyze"]
    # Publishing: workflow_run of that workflow; runs nothing but actions; downloads that artifact.
    assert publish["on"]["workflow_run"]["workflows"] == [analyze["name"]]
    [job] = publish["jobs"].values()
    assert "github.event.workflow_run.conclusion != 'cancelled'" in job["if"]
    assert all("run" not in s for s in job["steps"])
    [download] = [s for s in job["steps"] if s["uses"].startswith("actions/download-artifact@")]
    assert download["with"]["name"] == upload["with"]["name"]
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    [tool] = [s for s in job["steps"] if s["uses"].startswith(OWN)]
    assert tool["with"]["mode"] == "publish" and tool["with"]["token"] == "${{ github.token }}"
    assert tool["with"]["report"].startswith(download["with"]["path"])


def test_no_example_uses_pull_request_target() -> None:
    for path in EXAMPLES:
        assert "pull_request_target" not in events(load(path.read_text())), path.name


# action.yml


def action() -> dict[str, Any]:
    return dict(load(ACTION.read_text()))


def step(name: str) -> dict[str, Any]:
    [found] = [s for s in action()["runs"]["steps"] if s.get("name") == name]
    return found


def test_cache_key_is_what_built_the_venv() -> None:
    text = ACTION.read_text()
    for args in re.findall(r"hashFiles\((.*?)\)", text):
        # hashFiles reads only the workspace: the action's own folder or RUNNER_TEMP give ''.
        assert not re.search(r"action_path|runner\.|\.\.|'/", args), f"hashFiles({args}) is constant"
    restore = step("Restore the inflight-guard venv")
    assert restore["uses"].startswith("actions/cache/restore@")
    key = restore["with"]["key"]
    for part in ["runner.os", *(f"steps.key.outputs.{p}" for p in ("ref", "version", "python"))]:
        assert part in key, f"cache key lacks {part}"
    keyed = step("Key the inflight-guard venv")
    assert keyed["env"]["ACTION_REF"] == "${{ github.action_ref }}"
    save = step("Save the inflight-guard venv")
    assert save["uses"].startswith("actions/cache/save@")
    assert save["with"]["key"] == "${{ steps.cache.outputs.cache-primary-key }}"
    assert save["with"]["path"] == restore["with"]["path"]
    names = [s["name"] for s in action()["runs"]["steps"]]
    assert names.index("Save the inflight-guard venv") < names.index("Run inflight-guard")


def _key(action_path: Path, tmp: Path, ref: str = "v0.1.0") -> dict[str, str]:
    output = tmp / "key-output"
    output.write_text("")
    env = {"PATH": str(Path(shutil.which("python3") or "python3").parent) + ":/usr/bin:/bin"}
    env |= {"GITHUB_ACTION_PATH": str(action_path), "GITHUB_OUTPUT": str(output), "ACTION_REF": ref}
    script = step("Key the inflight-guard venv")["run"]
    subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        env=env,
        check=True,
        timeout=60,
    )
    return dict(line.split("=", 1) for line in output.read_text().splitlines())


def test_a_new_version_or_new_code_gets_a_new_key(tmp_path: Path) -> None:
    python = subprocess.run(["python3", "--version"], capture_output=True, text=True, check=True).stdout
    key = _key(ROOT, tmp_path)
    assert key["ref"] == "v0.1.0" and key["version"] == VERSION
    assert key["python"] == "CPython-" + python.split()[1]  # the exact `python3 --version`
    assert _key(ROOT, tmp_path) == key  # stable
    assert _key(ROOT, tmp_path, ref="")["ref"] == "local"  # github.action_ref can be empty
    copy = tmp_path / "action"
    for part in ("bot", "rules"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    assert _key(copy, tmp_path) == key  # the same files: the same venv
    (copy / "bot" / "cli.py").write_text((copy / "bot" / "cli.py").read_text() + "\n# changed\n")
    assert _key(copy, tmp_path)["digest"] != key["digest"]  # same version, other code (a branch ref)
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(f'version = "{VERSION}"', 'version = "9.9.9"'))
    assert _key(copy, tmp_path)["version"] == "9.9.9"


def test_the_tool_replaces_the_shell_and_gets_secrets_only_through_env(tmp_path: Path) -> None:
    run = step("Run inflight-guard")
    lines = [line.strip() for line in run["run"].strip().splitlines()]
    assert lines[-1] == 'exec "$INFLIGHT_GUARD_BIN/inflight-guard" action'
    assert run["env"]["INFLIGHT_GUARD_TOKEN"] == "${{ inputs.token }}"
    for s in action()["runs"]["steps"]:
        # No expression is pasted into a script; the token is in no other step.
        assert "${{" not in s.get("run", ""), s["name"]
        if s["name"] != run["name"]:
            assert "inputs.token" not in json.dumps(s), s["name"]
    # Every documented input reaches the tool.
    for name in action()["inputs"]:
        assert f"${{{{ inputs.{name} }}}}" in run["env"].values(), name
    # `exec`: the tool is the step's own process, not a child of a bash holding the token.
    stub = tmp_path / "bin" / "inflight-guard"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\necho "$$ $*" > "$PIDFILE"\n')
    stub.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "INFLIGHT_GUARD_BIN": str(stub.parent), "PIDFILE": str(tmp_path / "pid")}
    proc = subprocess.Popen(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", run["run"]], env=env)
    assert proc.wait(timeout=30) == 0
    assert (tmp_path / "pid").read_text().split() == [str(proc.pid), "action"]


# GitHub's schemas (SchemaStore)


def _validator(name: str) -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    return jsonschema.Draft7Validator(schema)


def _errors(validator: jsonschema.Draft7Validator, data: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in validator.iter_errors(data)]


def test_action_matches_githubs_action_schema() -> None:
    assert _errors(_validator("github-action.json"), action()) == []


WHOLE_WORKFLOWS = sorted(n for n in SOURCES if n != "action.yml" and {"on", "jobs"} <= set(load(SOURCES[n])))


def test_whole_workflows_are_found() -> None:
    assert len(WHOLE_WORKFLOWS) >= 5, WHOLE_WORKFLOWS  # four examples and CI, at least


@pytest.mark.parametrize("name", WHOLE_WORKFLOWS)
def test_workflows_match_githubs_workflow_schema(name: str) -> None:
    assert _errors(_validator("github-workflow.json"), load(SOURCES[name])) == []
