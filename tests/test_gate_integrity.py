"""The gate no one can talk past: each attack on the status, driven through `inflight-guard action`
against the fake GitHub (every request and response held to GitHub's OpenAPI description), with
real webhook payloads and real git repositories. Each test asserts that the attack fails and that
the run still ends with a status or a summary."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from action_support import (
    NUMBER,
    REPO,
    Run,
    action,
    command,
    ours,
    pr_event,
    run_event,
    setup_pr,
)
from github_fake import ACTIONS_BOT, FakeGitHub, running_fake
from gitrepo import commit, make_repo
from sources import ACTIVITIES, BASE, app_files, workflow

from bot.demo import HISTORIES, build_repo
from bot.pipeline import CheckOptions, run_check
from bot.report.render import MARKER

TOKEN = "ghs_inflightGuardIsolationProbe0123456789"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYinflightGuardProbe"
CONNECTION = "postgres://etl:inflightGuardProbePassword@warehouse:5432/prod"
KEY = "-----BEGIN inflightGuardProbeKey-----" + "k" * 100_000  # more than a pipe holds unread


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with running_fake() as server:
        yield server


def shas(repo: Path) -> tuple[str, str]:
    git = ["git", "-C", str(repo), "rev-parse"]
    base = subprocess.run([*git, "main"], capture_output=True, text=True, check=True).stdout.strip()
    head = subprocess.run([*git, "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    return base, head


def breaking_repo(tmp: Path, head_files: dict[str, str] | None = None) -> tuple[Path, str, str]:
    repo = make_repo(tmp / "repo", BASE, head_files or app_files("reserve", "fraud_check", "charge", "ship"))
    path = Path(repo.working_dir)
    return (path, *shas(path))


def outside_code(markdown: str) -> str:
    """The comment's text that GitHub renders as markdown/HTML: fenced blocks and code spans removed."""
    text = re.sub(r"^(`{3,})[^\n]*\n.*?^\1\s*$", "", markdown, flags=re.S | re.M)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text)


def fingerprint_of(repo: Path, base: str, head: str, rule: str) -> str:
    report = run_check(CheckOptions(repo=repo, base=base, head=head))
    return next(f.fingerprint for f in report.findings if f.rule == rule)


def forged_block(fingerprint: str) -> str:
    ack = {
        "fingerprint": fingerprint,
        "rule": "TMP101",
        "by": "lead",
        "reason": "ok",
        "at": "2026-01-01T00:00:00Z",
    }
    return f"<!-- inflight-guard:acks {json.dumps([ack], separators=(',', ':'))} -->"


# --- acknowledgements and the sticky comment ----------------------------------------------------


def test_forged_ack_blocks_in_code_names_and_reasons_grant_nothing(fake: FakeGitHub, tmp_path: Path) -> None:
    repo, base, head = breaking_repo(tmp_path)
    block = forged_block(fingerprint_of(repo, base, head, "TMP101"))
    # The head plants the block in a source line the outline copies, and in an activity's name.
    planted = workflow("reserve", "fraud_check", "charge", "ship", above={"fraud_check": f"# {block}"})
    planted = planted.replace(
        "execute_activity(fraud_check,", f"execute_activity({json.dumps('fraud_check' + block)},"
    )
    git_repo = make_repo(tmp_path / "planted", BASE, {**app_files(), "app/workflows.py": planted})
    repo = Path(git_repo.working_dir)
    base, head = shas(repo)
    setup_pr(fake, base, head)
    fake.set_role(REPO, "visitor", "read")
    fake.set_role(REPO, "lead", "write")
    # A reason carrying the block, from someone without write access, and from a writer acking
    # a rule that has no finding here.
    fake.add_comment(REPO, NUMBER, f"/inflight ack TMP101@{head} {block}", login="visitor")
    fake.add_comment(REPO, NUMBER, f"/inflight ack TMP199@{head} {block}", login="lead")
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo)
    assert run.code == 1, run.stderr
    assert fake.statuses(REPO, head)[-1]["state"] == "failure"
    [sticky] = ours(fake)
    assert "inflight-guard: **breaking**" in sticky["body"]
    # Nothing the PR or a commenter wrote becomes live HTML: one HTML comment, our marker.
    rendered = outside_code(sticky["body"])
    assert rendered.count("<!--") == 1 and rendered.startswith(MARKER)
    assert "<" not in rendered.replace(MARKER, "").replace("<details", "").replace("</details>", "").replace(
        "<summary>", ""
    ).replace("</summary>", "").replace("<b>", "").replace("</b>", "").replace("<sub>", "").replace(
        "</sub>", ""
    ).replace("<br>", "")
    assert "Not counted" in sticky["body"] and "has the `read` role" in sticky["body"]
    assert fake.violations == []


def test_another_bots_marker_comment_is_not_state(fake: FakeGitHub, tmp_path: Path) -> None:
    repo, base, head = breaking_repo(tmp_path)
    setup_pr(fake, base, head)
    block = forged_block(fingerprint_of(repo, base, head, "TMP101"))
    # Another workflow of the repository writes as github-actions[bot] too, with our marker.
    hijack = fake.add_comment(
        REPO, NUMBER, f"{MARKER}\nall good\n{block}", login=ACTIONS_BOT, user_type="Bot"
    )
    other = fake.add_comment(REPO, NUMBER, f"see {MARKER}\n{block}", login=ACTIONS_BOT, user_type="Bot")
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo)
    assert run.code == 1, run.stderr
    assert fake.statuses(REPO, head)[-1]["state"] == "failure"
    comments = {c["id"]: c["body"] for c in fake.comments(REPO, NUMBER)}
    assert block not in comments[hijack]  # at most, it is overwritten by the real report
    assert "inflight-guard: **breaking**" in comments[hijack]
    assert comments[other].startswith("see ")  # not ours: the marker is not its first line
    assert fake.violations == []


def test_pr_added_suppression_waits_for_an_authorized_ack(fake: FakeGitHub, tmp_path: Path) -> None:
    head_files = app_files(
        "reserve",
        "fraud_check",
        "charge",
        "ship",
        above={"fraud_check": "# inflight-guard: ignore[TMP101] trust me"},
    )
    repo, base, head = breaking_repo(tmp_path, head_files)
    setup_pr(fake, base, head)
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo)
    assert run.code == 1, run.stderr
    assert fake.statuses(REPO, head)[-1]["state"] == "failure"
    [sticky] = ours(fake)
    assert "**Waiting for an acknowledgement**" in sticky["body"] and "trust me" in sticky["body"]
    report = json.loads(Path(run.outputs["report"]).read_text())
    [finding] = [f for f in report["findings"] if f["rule"] == "TMP101"]
    assert finding["suppressed"] is False and "trust me" in finding["pending_suppression"]
    # The PR's author cannot acknowledge it under forbid_self_ack; a maintainer can.
    policy = tmp_path / "policy.yml"
    policy.write_text("ack:\n  forbid_self_ack: true\n")
    fake.set_role(REPO, "octocat", "admin")
    fake.set_role(REPO, "lead", "maintain")
    _, cid = command(
        tmp_path, fake, repo, f"/inflight ack TMP101@{head} mine", "octocat", "--config", str(policy)
    )
    assert fake.reactions(cid) == ["-1"] and fake.statuses(REPO, head)[-1]["state"] == "failure"
    _, cid = command(
        tmp_path, fake, repo, f"/inflight ack TMP101@{head[:9]} reviewed", "lead", "--config", str(policy)
    )
    assert fake.reactions(cid) == ["eyes", "+1"]
    assert fake.statuses(REPO, head)[-1]["state"] == "success"
    assert fake.violations == []


def test_ack_all_covers_only_the_head_the_maintainer_read(fake: FakeGitHub, tmp_path: Path) -> None:
    audited = ACTIVITIES + "\n\n@activity.defn\nasync def audit(order_id: str) -> str:\n    return order_id\n"
    git_repo = make_repo(
        tmp_path / "repo",
        BASE,
        app_files("reserve", "fraud_check", "charge", "ship", extra={"app/activities.py": audited}),
    )
    repo = Path(git_repo.working_dir)
    base, reviewed = shas(repo)
    setup_pr(fake, base, reviewed)
    fake.set_role(REPO, "lead", "write")
    comment = f"/inflight ack all@{reviewed} fraud check agreed with the on-call"
    comment_id = fake.add_comment(REPO, NUMBER, comment, login="lead")
    # A push lands between the maintainer's comment and the job that handles it.
    pushed = commit(
        git_repo,
        app_files("reserve", "fraud_check", "charge", "audit", "ship", extra={"app/activities.py": audited}),
        "audit too",
    ).hexsha
    fake.set_head(REPO, NUMBER, pushed)
    from action_support import comment_event

    event = comment_event(tmp_path, comment_id, comment, "lead")
    run = action(tmp_path, fake, "issue_comment", event, repo, "--fail-on", "risky")
    assert run.code == 0, run.stderr
    # The push added a second insertion (TMP129): the ack named the head before it, so it stays open.
    assert fake.statuses(REPO, pushed)[-1]["state"] == "failure"
    report = run_check(CheckOptions(repo=repo, base=base, head=pushed, synthesize="off"))
    assert sorted(f.rule for f in report.findings) == ["TMP101", "TMP129"]
    [sticky] = ours(fake)
    assert "acknowledged by @lead at" in sticky["body"]  # the fraud check, reviewed at that head
    assert "**TMP129**" in sticky["body"].split("suppressed finding(s)")[0]  # still an open finding
    assert fake.violations == []


def test_an_edited_ack_comment_does_not_count(fake: FakeGitHub, tmp_path: Path) -> None:
    repo, base, head = breaking_repo(tmp_path)
    setup_pr(fake, base, head)
    fake.set_role(REPO, "lead", "write")
    cid = fake.add_comment(REPO, NUMBER, f"/inflight ack TMP199@{head} typo", login="lead")
    fake.edit_comment(cid, f"/inflight ack all@{head} edited by someone with write access")
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo)
    assert run.code == 1
    assert fake.statuses(REPO, head)[-1]["state"] == "failure"
    assert "edited after posting" in ours(fake)[0]["body"]
    assert fake.violations == []


def test_replay_findings_cannot_be_acknowledged(fake: FakeGitHub, tmp_path: Path) -> None:
    repo = build_repo(tmp_path / "demo")
    base, head = shas(repo)
    setup_pr(fake, base, head)
    fake.set_role(REPO, "lead", "admin")
    fake.add_comment(REPO, NUMBER, f"/inflight ack all@{head} ship it", login="lead")
    run = action(
        tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo, "--histories", str(HISTORIES)
    )
    assert run.code == 1, run.stderr
    report = json.loads(Path(run.outputs["report"]).read_text())
    replay = [f for f in report["findings"] if f["rule"].startswith("TMP13")]
    assert replay and all(not f["suppressed"] for f in replay)
    assert fake.statuses(REPO, head)[-1]["state"] == "failure"
    assert fake.violations == []


# --- fork publishing ------------------------------------------------------------------------


def analysis_job(
    tmp: Path, fake: FakeGitHub, repo: Path, base: str, head: str, report: Path, **kw: bool
) -> Run:
    """Step 1 of the fork-safe setup: `pull_request`, mode analyze, the report as an artifact."""
    event = pr_event(tmp, base, head, **kw)
    return action(tmp, fake, "pull_request", event, repo, "--mode", "analyze", "--report", str(report))


def publish_job(tmp: Path, fake: FakeGitHub, repo: Path, head: str, report: Path) -> Run:
    """Step 2: `workflow_run` in the base repository's checkout, reading the downloaded artifact."""
    event = run_event(tmp, head)
    return action(tmp, fake, "workflow_run", event, repo, "--mode", "publish", "--report", str(report))


def test_forged_fork_artifact_cannot_pass_or_move_the_comment(fake: FakeGitHub, tmp_path: Path) -> None:
    repo, base, head = breaking_repo(tmp_path)
    setup_pr(fake, base, head)
    fake.add_pull(REPO, 7, head_sha="e" * 40, base_sha=base, head_ref="other", files=["x.py"])
    report_path = tmp_path / "artifact" / "report.json"
    first = analysis_job(tmp_path, fake, repo, base, head, report_path, fork=True)
    assert first.code == 1
    # The fork edits its artifact: a safe verdict, no finding, and another PR's number.
    forged = json.loads(report_path.read_text())
    forged["verdict"] = {"level": "safe", "reasons": ["no workflow definition changed"]}
    forged["findings"], forged["gates"] = [], []
    report_path.write_text(json.dumps(forged))
    sidecar = report_path.with_name("report.pr.json")
    sidecar.write_text(json.dumps({"number": 7, "head_sha": head, "base_sha": base}))
    run = publish_job(tmp_path, fake, repo, head, report_path)
    assert run.code == 1, run.stderr
    assert fake.statuses(REPO, head)[-1]["state"] == "failure"
    assert "inflight-guard: **breaking**" in ours(fake)[0]["body"]
    assert fake.comments(REPO, 7) == []
    assert run.summary.count("## ❌ inflight-guard: **breaking**") == 1  # one report: the recomputed one
    assert "advisory here" in run.summary
    assert fake.violations == []


def test_uploaded_replay_results_can_only_make_it_worse(fake: FakeGitHub, tmp_path: Path) -> None:
    # A head that changes nothing a workflow does: statically safe.
    repo, base, head = breaking_repo(
        tmp_path, app_files("reserve", "charge", "ship", extra={"README.md": "hi\n"})
    )
    setup_pr(fake, base, head)
    report_path = tmp_path / "artifact" / "report.json"
    analysis_job(tmp_path, fake, repo, base, head, report_path)
    uploaded = json.loads(report_path.read_text())
    assert uploaded["verdict"]["level"] == "safe"
    uploaded["verdict"] = {"level": "breaking", "reasons": ["replay failed on an in-flight execution"]}
    report_path.write_text(json.dumps(uploaded))
    run = publish_job(tmp_path, fake, repo, head, report_path)
    assert run.code == 1
    assert fake.statuses(REPO, head)[-1]["state"] == "failure"
    assert fake.violations == []


# --- PR code never near a token -----------------------------------------------------------------

PROBE = """

def _inflight_guard_probe() -> None:
    import glob, os
    hits = []
    for path in glob.glob("/proc/[0-9]*/environ") + ["/proc/%d/environ" % os.getppid()]:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        for secret in ({token!r}, {aws!r}, {connection!r}, {key!r}):
            if secret.encode() in data:
                hits.append(path)
    with open({out!r}, "a") as fh:
        fh.write("ran %s\\n" % sorted(set(hits)))


try:  # Temporal's workflow sandbox re-imports this module and refuses files: the first import probes
    _inflight_guard_probe()
except Exception:
    pass
"""


def probe_code(out: Path) -> str:
    return PROBE.format(token=TOKEN, aws=AWS_SECRET, connection=CONNECTION, key=KEY[:40], out=str(out))


SECRETS = {
    "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    "AWS_ACCESS_KEY_ID": "AKIAINFLIGHTPROBE",
    "AIRFLOW_CONN_WAREHOUSE": CONNECTION,
    "DEPLOY_PRIVATE_KEY": KEY,
}


def test_replayed_head_code_cannot_read_the_token(fake: FakeGitHub, tmp_path: Path) -> None:
    repo = build_repo(tmp_path / "demo")
    out = tmp_path / "probe.txt"
    workflows = repo / "orders" / "workflows.py"
    workflows.write_text(workflows.read_text() + probe_code(out))
    subprocess.run(["git", "-C", str(repo), "commit", "-qam", "probe"], check=True)
    base, head = shas(repo)
    setup_pr(fake, base, head)
    run = action(
        tmp_path,
        fake,
        "pull_request",
        pr_event(tmp_path, base, head),
        repo,
        "--histories",
        str(HISTORIES),
        token=TOKEN,
        extra_env=SECRETS,
    )
    assert run.code == 1, run.stderr
    lines = out.read_text().splitlines()
    assert lines and all(line == "ran []" for line in lines), lines  # the head code ran, found nothing
    assert fake.statuses(REPO, head)[-1]["state"] == "failure"  # and the token still published
    # pull_request_target holds a write token: the head's code is never run at all.
    out.unlink()
    run = action(
        tmp_path,
        fake,
        "pull_request_target",
        pr_event(tmp_path, base, head),
        repo,
        "--histories",
        str(HISTORIES),
        token=TOKEN,
        extra_env=SECRETS,
    )
    assert run.code == 1 and not out.exists()
    assert "static analysis only" in ours(fake)[0]["body"]
    assert fake.violations == []


DAG = """from datetime import datetime

from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("etl", start_date=datetime(2025, 1, 1), schedule=None):
{tasks}
"""


def test_dag_file_cannot_read_the_token_and_is_not_loaded_with_a_write_token(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    from airflow_env import AIRFLOW_3, airflow_python

    python = airflow_python(AIRFLOW_3)
    out = tmp_path / "probe.txt"
    base_dag = DAG.format(tasks='    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")')
    head_dag = DAG.format(tasks='    EmptyOperator(task_id="a")') + probe_code(out)
    git_repo = make_repo(tmp_path / "repo", {"dags/etl.py": base_dag}, {"dags/etl.py": head_dag})
    repo = Path(git_repo.working_dir)
    base, head = shas(repo)
    setup_pr(fake, base, head)
    run = action(
        tmp_path,
        fake,
        "pull_request",
        pr_event(tmp_path, base, head),
        repo,
        "--python",
        python,
        token=TOKEN,
        extra_env=SECRETS,
        timeout=400,
    )
    assert run.code in (0, 1), run.stderr
    lines = out.read_text().splitlines()
    assert lines and all(line == "ran []" for line in lines), lines
    assert fake.statuses(REPO, head)
    # /inflight recheck runs with a write token: the DAG file is read statically, never executed.
    out.unlink()
    fake.set_role(REPO, "lead", "write")
    run, _ = command(tmp_path, fake, repo, "/inflight recheck", "lead", "--python", python)
    assert run.code == 0, run.stderr
    assert not out.exists()
    assert "static analysis only" in ours(fake)[0]["body"]
    assert fake.violations == []


# --- every run ends with a status or a summary ----------------------------------------------------


def test_get_user_failing_still_sets_the_status(tmp_path: Path) -> None:
    repo, base, head = breaking_repo(tmp_path)
    with running_fake(installation_token=False) as fake:
        setup_pr(fake, base, head)
        fake.fail_ops["users/get-authenticated"] = [502] * 10
        run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo)
        assert run.code == 1, run.stderr
        assert fake.statuses(REPO, head)[-1]["state"] == "failure"
        assert "who am I" in run.stderr and "inflight-guard: **breaking**" in run.summary
        assert fake.violations == []


def test_comment_rejected_with_422_falls_back_to_the_summary_form(fake: FakeGitHub, tmp_path: Path) -> None:
    repo, base, head = breaking_repo(tmp_path)
    setup_pr(fake, base, head)
    fake.fail_ops["issues/create-comment"] = [422]
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo)
    assert run.code == 1, run.stderr
    assert fake.statuses(REPO, head)[-1]["state"] == "failure"
    [sticky] = ours(fake)
    assert "This comment is a summary" in sticky["body"]
    assert fake.violations == []


def test_a_github_that_never_answers_ends_the_run_with_a_summary(fake: FakeGitHub, tmp_path: Path) -> None:
    repo, base, head = breaking_repo(tmp_path)
    setup_pr(fake, base, head)
    fake.hang.set()
    run = action(
        tmp_path,
        fake,
        "pull_request",
        pr_event(tmp_path, base, head),
        repo,
        extra_env={"INFLIGHT_GUARD_PUBLISH_DEADLINE": "3"},
        timeout=120,
    )
    fake.hang.clear()
    assert run.code == 1, run.stderr
    assert "did not answer within 3 s" in run.stderr
    assert "inflight-guard: **breaking**" in run.summary and run.outputs["verdict"] == "breaking"


def test_a_broken_workspace_ends_with_an_error_status_and_summary(fake: FakeGitHub, tmp_path: Path) -> None:
    _, base, head = breaking_repo(tmp_path)
    setup_pr(fake, base, head)
    empty = tmp_path / "not-a-repo"
    empty.mkdir()
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), empty)
    assert run.code == 2
    assert fake.statuses(REPO, head)[-1]["state"] == "error"
    assert run.summary.startswith("## inflight-guard: error")
    assert fake.violations == []


def test_two_runs_at_once_leave_one_sticky_comment(fake: FakeGitHub, tmp_path: Path) -> None:
    repo, base, head = breaking_repo(tmp_path)
    setup_pr(fake, base, head)
    import threading

    results = []

    def one(i: int) -> None:
        sub = tmp_path / f"run{i}"
        sub.mkdir()
        results.append(action(sub, fake, "pull_request", pr_event(sub, base, head), repo))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.code for r in results] == [1, 1]
    assert len(ours(fake)) == 1
    assert len(fake.statuses(REPO, head)) == 2
    assert fake.violations == []


def test_replay_command_reruns_the_pull_request_analysis_instead(fake: FakeGitHub, tmp_path: Path) -> None:
    repo, base, head = breaking_repo(tmp_path)
    setup_pr(fake, base, head)
    fake.set_role(REPO, "lead", "write")
    old = fake.add_workflow_run(REPO, head_sha=head, path=".github/workflows/inflight-guard-analyze.yml")
    newest = fake.add_workflow_run(REPO, head_sha=head, path=".github/workflows/inflight-guard-analyze.yml")
    fake.add_workflow_run(REPO, head_sha=head, path=".github/workflows/deploy.yml")
    fake.add_workflow_run(REPO, head_sha="f" * 40, path=".github/workflows/inflight-guard-analyze.yml")
    run, cid = command(tmp_path, fake, repo, "/inflight replay", "lead", "--histories", str(HISTORIES))
    assert run.code == 0, run.stderr
    assert fake.reruns == [newest] and old != newest
    assert fake.reactions(cid) == ["+1"]
    assert fake.statuses(REPO, head) == [] and ours(fake) == []  # nothing judged (or run) here
    assert fake.violations == []


# --- hostile input through the Action: a clear status every time --------------------------------------


def _bomb(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\nStartAt: A\nStates:\n  A:\n    Type: Pass\n    End: true\n"


def _renamed(files: dict[str, str], path: str) -> dict[str, str]:
    return {path if p == "app/workflows.py" else p: text for p, text in files.items()}


def _many(value: int) -> dict[str, str]:
    return {f"data/part_{i % 40:02d}/settings_{i:05d}.py": f"VALUE = {value}\n" for i in range(10_000)}


BREAKING_FILES = app_files("reserve", "fraud_check", "charge", "ship")
DEEP = "        depth = " + "+".join(["1"] * 5_000) + "\n"
HOSTILE: dict[str, tuple[dict[str, str], dict[str, str], str]] = {
    # name: (base files, head files, the status the head must get)
    "alias bomb in an ASL file": (BASE, {**BASE, "flows/bomb.asl.yaml": _bomb()}, "error"),
    "5,000-deep expression": (
        BASE,
        {
            **BASE,
            "app/workflows.py": BREAKING_FILES["app/workflows.py"].replace(
                '        return "done"\n', DEEP + '        return "done"\n'
            ),
        },
        "error",
    ),
    # No worker can import a module named with a newline: synthesis cannot replay on it (TMP133,
    # an error the gate fails closed on), on top of the breaking insertion.
    "workflow file named with a newline": (
        _renamed(BASE, "app/work\nflows.py"),
        _renamed(BREAKING_FILES, "app/work\nflows.py"),
        "error",
    ),
    "10,000 changed files": ({**BASE, **_many(1)}, {**BREAKING_FILES, **_many(2)}, "failure"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_ends_with_a_status_and_a_summary(name: str, fake: FakeGitHub, tmp_path: Path) -> None:
    base_files, head_files, state = HOSTILE[name]
    git_repo = make_repo(tmp_path / "repo", base_files, head_files)
    if name == "workflow file named with a newline":
        # and a submodule (gitlink) named like a source file beside it
        git_repo.git.update_index("--add", "--cacheinfo", f"160000,{'1' * 40},app/sub.py")
        git_repo.git.commit("-m", "a submodule named like a file")
    repo = Path(git_repo.working_dir)
    base, head = shas(repo)
    setup_pr(fake, base, head)
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo, timeout=300)
    assert run.code == {"error": 2, "failure": 1}[state], run.stderr
    assert fake.statuses(REPO, head)[-1]["state"] == state
    assert run.summary.startswith(MARKER) and "inflight-guard: **" in run.summary
    assert fake.violations == []


def test_a_history_past_the_size_cap_ends_with_an_error_status(fake: FakeGitHub, tmp_path: Path) -> None:
    repo = build_repo(tmp_path / "demo")
    base, head = shas(repo)
    setup_pr(fake, base, head)
    folder = tmp_path / "histories"
    folder.mkdir()
    with (folder / "huge.json").open("wb") as f:  # sparse: 500 MB that take no disk
        f.truncate(500 * 1024 * 1024)
    run = action(
        tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo, "--histories", str(folder)
    )
    assert run.code == 2, run.stderr
    assert fake.statuses(REPO, head)[-1]["state"] == "error"
    assert "over the 67,108,864-byte limit" in run.summary


def test_publishing_for_a_run_with_a_silent_github_ends_in_seconds(fake: FakeGitHub, tmp_path: Path) -> None:
    repo, _base, head = breaking_repo(tmp_path)
    fake.hang.set()
    run = action(
        tmp_path,
        fake,
        "workflow_run",
        run_event(tmp_path, head),
        repo,
        "--mode",
        "publish",
        extra_env={"INFLIGHT_GUARD_PUBLISH_DEADLINE": "3"},
        timeout=120,
    )
    fake.hang.clear()
    assert run.code == 2
    assert "did not answer within 3 s" in run.stderr
    assert run.summary.startswith("## inflight-guard: error") and "GitHub did not answer" in run.summary


def test_a_static_recheck_or_ack_cannot_clear_a_replay_failure(fake: FakeGitHub, tmp_path: Path) -> None:
    repo = build_repo(tmp_path / "demo")
    base, head = shas(repo)
    setup_pr(fake, base, head)
    run = action(
        tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo, "--histories", str(HISTORIES)
    )
    assert run.code == 1
    assert fake.statuses(REPO, head)[-1]["description"].startswith("replay failed")
    fake.set_role(REPO, "lead", "maintain")
    # A maintainer acknowledges every static finding; the command job replays nothing.
    run, cid = command(
        tmp_path, fake, repo, f"/inflight ack all@{head} the fraud check is gated later", "lead"
    )
    assert run.code == 0, run.stderr
    assert fake.reactions(cid) == ["eyes", "+1"]
    report_statuses = fake.statuses(REPO, head)
    assert (
        report_statuses[-1]["state"] == "failure" and "pull_request run" in report_statuses[-1]["description"]
    )
    command(tmp_path, fake, repo, "/inflight recheck", "lead")
    assert fake.statuses(REPO, head)[-1]["state"] == "failure"
    assert fake.violations == []


def test_an_ack_cannot_undo_what_the_uploaded_report_made_worse(fake: FakeGitHub, tmp_path: Path) -> None:
    repo, base, head = breaking_repo(tmp_path)
    setup_pr(fake, base, head)
    report_path = tmp_path / "artifact" / "report.json"
    analysis_job(tmp_path, fake, repo, base, head, report_path)
    uploaded = json.loads(report_path.read_text())
    uploaded["verdict"] = {"level": "error", "reasons": ["the DAG loader failed"]}
    # A forged replay finding: a rule id no pack defines, written to break out of the table.
    forged = dict(uploaded["findings"][0])
    forged.update(
        rule="TMP130\n\n## ✅ inflight-guard: **safe**\n\n![x](https://evil.invalid/p.png)",
        change={**forged["change"], "kind": "temporal.replay.failed"},
    )
    uploaded["findings"].append(forged)
    report_path.write_text(json.dumps(uploaded))
    fake.set_role(REPO, "lead", "maintain")
    fake.add_comment(REPO, NUMBER, f"/inflight ack all@{head} reviewed", login="lead")
    run = publish_job(tmp_path, fake, repo, head, report_path)
    assert run.code == 2, run.stderr
    assert fake.statuses(REPO, head)[-1]["state"] == "error"  # the ack marks TMP101, the floor stays
    body = ours(fake)[0]["body"]
    assert "acknowledged by @lead" in body
    assert "evil.invalid" not in body and "## ✅" not in body
    assert fake.violations == []


def test_unack_of_one_rule_withdraws_it_from_an_earlier_ack_all(fake: FakeGitHub, tmp_path: Path) -> None:
    repo, base, head = breaking_repo(tmp_path)
    setup_pr(fake, base, head)
    fake.set_role(REPO, "lead", "write")
    fake.add_comment(REPO, NUMBER, f"/inflight ack all@{head} reviewed", login="lead")
    action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo)
    assert fake.statuses(REPO, head)[-1]["state"] == "success"
    fake.add_comment(REPO, NUMBER, "/inflight unack command-inserted-ungated", login="lead")  # by slug
    action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head, name="synchronize"), repo)
    assert fake.statuses(REPO, head)[-1]["state"] == "failure"
    assert fake.violations == []
