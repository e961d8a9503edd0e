"""Replay of real histories: recorded on a real Temporal dev server, replayed against real heads.

The base workflows (tests/fixtures/replay/base) run on the server: some executions finish, two
stay in flight (one past the charge, one before it). Each head in tests/fixtures/replay/heads is
one row of the reference table; the check replays every recorded history against it in the
user's interpreter and must report each history's outcome.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import invoke, run_process
from conftest import FIXTURES
from gitrepo import make_repo
from servers import moto_env, moto_s3_server

from bot.evidence import display_path

REPLAY = FIXTURES / "replay"
ORDERS_DONE = ("order-done-1", "order-done-2")
SECRET = "alice@example.com"  # the input of order-done-2: payload data
ORDERS_OPEN = ("order-waiting", "slow-order")
ALL = (*ORDERS_DONE, *ORDERS_OPEN, "refund-1")


@pytest.fixture(scope="session")
def recorded(server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Histories exported through the client API (`fetch_history().to_json()`)."""
    out = tmp_path_factory.mktemp("recorded")
    run = subprocess.run(
        [sys.executable, str(REPLAY / "record.py"), server, str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(p.stem for p in out.glob("*.json")) == sorted(ALL)
    return out


def shop_repo(root: Path, head: str) -> Path:
    """A repository whose base is the recorded code and whose head replaces shop/workflows.py."""
    head_tree = root / "head-tree"
    shutil.copytree(REPLAY / "base", head_tree, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPLAY / "heads" / f"{head}.py", head_tree / "shop" / "workflows.py")
    make_repo(root / "repo", REPLAY / "base", head_tree)
    return root / "repo"


def check(repo: Path, *sources: str | Path, extra: tuple[str, ...] = ()) -> tuple[int, dict[str, Any], str]:
    # Production histories only: synthesis has its own tests (tests/test_synthesis.py).
    args: list[str | Path] = [
        "check",
        "--repo",
        repo,
        "--base",
        "main",
        "--format",
        "json",
        "--synthesize",
        "off",
    ]
    for s in sources:
        args += ["--histories", s]
    run = invoke(*args, "--cache", repo.parent / "cache", *extra)
    assert "Traceback" not in run.stderr
    return run.exit_code, json.loads(run.stdout), run.stderr


def outcomes(report: dict[str, Any]) -> dict[str, str]:
    return {Path(r["history"]).stem: r["outcome"] for r in report["replay"]}


def rules(report: dict[str, Any]) -> list[str]:
    return [f["rule"] for f in report["findings"] if not f["suppressed"]]


def finding(report: dict[str, Any], rule: str) -> dict[str, Any]:
    [found] = [f for f in report["findings"] if f["rule"] == rule]
    return found


NDE, OK, ERR = "nondeterminism", "ok", "error"

# head → (expected outcome per history, exit code)
CASES: dict[str, tuple[dict[str, str], int]] = {
    # Reference table: "activity inserted mid-sequence": NDE once past that point.
    "inserted": (
        {
            "order-done-1": NDE,
            "order-done-2": NDE,
            "order-waiting": NDE,
            "slow-order": OK,
        },
        1,
    ),
    "inserted_patched": (dict.fromkeys(ALL, OK), 0),
    "reordered": ({**dict.fromkeys((*ORDERS_DONE, *ORDERS_OPEN), NDE), "refund-1": OK}, 1),
    "removed": ({**dict.fromkeys((*ORDERS_DONE, "order-waiting"), NDE), "slow-order": OK}, 1),
    # The type no longer exists in head: every Order execution would find no code.
    "renamed_type": ({**dict.fromkeys((*ORDERS_DONE, *ORDERS_OPEN), ERR), "refund-1": OK}, 1),
    # datetime.now() at the start of run: the sandbox fails every replay that reaches it.
    "nondeterministic": ({**dict.fromkeys((*ORDERS_DONE, *ORDERS_OPEN), ERR), "refund-1": OK}, 1),
    # Passes for the executions waiting on the signal (they would hang): static rules catch it.
    "signal_removed": ({**dict.fromkeys(ORDERS_DONE, NDE), **dict.fromkeys(ORDERS_OPEN, OK)}, 1),
    # After everything open executions recorded: only closed histories fail (risky, not breaking).
    "appended": ({**dict.fromkeys(ORDERS_DONE, NDE), **dict.fromkeys(ORDERS_OPEN, OK), "refund-1": OK}, 0),
    "timeout_changed": (dict.fromkeys(ALL, OK), 0),
    "patch_removed": ({"refund-1": NDE, **dict.fromkeys((*ORDERS_DONE, *ORDERS_OPEN), OK)}, 1),
    "patch_deprecated": (dict.fromkeys(ALL, OK), 0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_reference_table(case: str, recorded: Path, tmp_path: Path) -> None:
    expected, code = CASES[case]
    repo = shop_repo(tmp_path, case)
    exit_code, report, _ = check(repo, recorded)
    got = outcomes(report)
    assert {h: got.get(h) for h in expected} == expected
    assert exit_code == code, report["verdict"]
    failing = [r for r in report["replay"] if r["outcome"] in (NDE, ERR)]
    if any(r["open"] for r in failing):
        assert "TMP130" in rules(report)
        assert report["verdict"]["level"] == "breaking"
    elif failing:
        assert "TMP131" in rules(report) and "TMP130" not in rules(report)
    else:
        assert not {"TMP130", "TMP131"} & set(rules(report))


def test_failure_is_explained_by_the_static_change(recorded: Path, tmp_path: Path) -> None:
    repo = shop_repo(tmp_path, "inserted")
    _, report, _ = check(repo, recorded)
    replay = finding(report, "TMP130")
    static = finding(report, "TMP101")
    where = f"TMP101 at {static['location']['path']}:{static['location']['line']}"
    assert replay["change"]["details"]["explained_by"] == where
    assert replay["change"]["details"]["in_flight"] == 1
    assert replay["change"]["details"]["histories"] == 3
    [waiting] = [r for r in report["replay"] if Path(r["history"]).stem == "order-waiting"]
    assert waiting["open"] is True
    assert waiting["event"] == "activity charge"
    assert "fraud_check" in waiting["message"]
    # Beside the static finding: who is already past the change, who has not reached it.
    assert "3 histories fail replay here (1 in flight" in static["replay"]
    assert "1 in-flight histories replay cleanly: not past this change yet" in static["replay"]
    assert "slow-order.json" in static["replay"]
    gates = {g["kind"]: g for g in report["gates"]}
    assert gates["replay"]["status"] == "missing"
    assert gates["replay"]["evidence"] == "3 of 4 histories fail (1 in flight)"  # of Order


def test_comment_shows_which_histories_break_and_why(recorded: Path, tmp_path: Path) -> None:
    repo = shop_repo(tmp_path, "inserted")
    run = invoke("check", "--repo", repo, "--base", "main", "--histories", recorded, "--no-cache")
    assert run.exit_code == 1
    comment = run.stdout
    assert "<summary><b>Replay</b> — 5 of 5 replayed" in comment
    assert "Replayed 5 of 5 histories (2 in flight, 3 closed) against head with temporalio" in comment
    assert "order-waiting.json` | in flight | nondeterminism | " in comment
    assert "(activity charge) | TMP101 at shop/workflows.py:" in comment
    # Payload data (an execution's input, an activity's result) never reaches the comment.
    assert SECRET not in comment and "reserved order" not in comment
    assert "inflight-guard: replay: 5 histories" in run.stderr


def test_signal_removed_says_replay_cannot_see_it(recorded: Path, tmp_path: Path) -> None:
    repo = shop_repo(tmp_path, "signal_removed")
    _, report, _ = check(repo, recorded)
    [handler] = [
        f for f in report["findings"] if f["change"] and f["change"]["kind"] == "temporal.handler.removed"
    ]
    assert (
        "2 in-flight histories replay cleanly, but those waiting for the signal would wait forever"
        in handler["replay"]
    )


def test_pinned_workflows_are_skipped_with_the_reason(recorded: Path, tmp_path: Path) -> None:
    pinned = (
        (REPLAY / "base" / "shop" / "workflows.py")
        .read_text()
        .replace(
            '@workflow.defn(name="Order")',
            '@workflow.defn(name="Order", versioning_behavior=VersioningBehavior.PINNED)',
        )
        .replace(
            "from temporalio import workflow\n",
            "from temporalio import workflow\nfrom temporalio.common import VersioningBehavior\n",
        )
    )
    base = tmp_path / "base"
    shutil.copytree(REPLAY / "base", base, ignore=shutil.ignore_patterns("__pycache__"))
    (base / "shop" / "workflows.py").write_text(pinned)
    head = tmp_path / "head"
    shutil.copytree(base, head)
    (head / "shop" / "workflows.py").write_text(
        pinned.replace("await workflow.execute_activity(charge", "await workflow.execute_activity(ship")
    )
    make_repo(tmp_path / "repo", base, head)
    _, report, _ = check(tmp_path / "repo", recorded)
    skipped = [r for r in report["replay"] if r["workflow_type"] == "Order"]
    assert {r["outcome"] for r in skipped} == {"skipped"}
    assert all("versioning_behavior=PINNED" in r["message"] for r in skipped)


def test_bad_histories_are_reported_not_fatal(recorded: Path, tmp_path: Path) -> None:
    folder = tmp_path / "histories"
    folder.mkdir()
    done = (recorded / "order-done-1.json").read_text()
    (folder / "good.json").write_text(done)
    (folder / "truncated.json").write_text(done[: len(done) // 2])
    (folder / "empty.json").write_text("")
    (folder / "bare.json").write_text(json.dumps(json.loads(done)["events"]))  # a bare event list
    mystery = json.loads(done)
    mystery["events"][0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"] = "Mystery"
    (folder / "mystery.json").write_text(json.dumps(mystery))
    start_only = json.loads((recorded / "slow-order.json").read_text())
    start_only["events"] = start_only["events"][:1]
    (folder / "start-only.json").write_text(json.dumps(start_only))  # hangs the Replayer if replayed
    (folder / "noise.binpb").write_bytes(b"\x00\xffnot a protobuf at all")
    (folder / "object.json").write_text('{"workflowId": "x"}')
    repo = shop_repo(tmp_path, "inserted")
    exit_code, report, stderr = check(repo, folder)
    assert exit_code == 1
    by_name = {Path(r["history"]).name: r for r in report["replay"]}
    assert {n: r["outcome"] for n, r in by_name.items()} == {
        "good.json": NDE,
        "bare.json": NDE,
        "truncated.json": "unreadable",
        "empty.json": "unreadable",
        "mystery.json": "unmatched",
        "start-only.json": "skipped",
        "noise.binpb": "unreadable",
        "object.json": "unreadable",
    }
    assert by_name["truncated.json"]["message"].startswith("truncated JSON at line")
    assert by_name["empty.json"]["message"] == "empty file"
    assert "no definition of `Mystery` on either side" in by_name["mystery.json"]["message"]
    assert "only its start event" in by_name["start-only.json"]["message"]
    assert 'expected {"events": [...]}' in by_name["object.json"]["message"]
    comment = invoke("check", "--repo", repo, "--base", "main", "--histories", folder).stdout
    assert "4 unreadable — " in comment
    # Each history not replayed is named beside its reason.
    mystery, start_only = display_path(f"{folder}/mystery.json"), display_path(f"{folder}/start-only.json")
    assert f"- 1 unmatched — no definition of `Mystery` on either side: `{mystery}`\n" in comment
    assert str(folder) not in comment  # never the machine's absolute path
    assert (
        f"- 1 skipped — `Order`: holds only its start event: no workflow task ran yet, nothing to replay: `{start_only}`\n"
        in comment
    )
    assert "inflight-guard: replay: 8 histories" in stderr


def test_head_that_fails_to_import_is_one_finding(recorded: Path, tmp_path: Path) -> None:
    repo = shop_repo(tmp_path, "import_fails")
    exit_code, report, _ = check(repo, recorded)
    problems = [f for f in report["findings"] if f["rule"] == "TMP133"]
    assert len(problems) == 2  # one per workflow type of the module, not one per history
    assert {p["location"]["path"] for p in problems} == {"shop/workflows.py"}
    assert {p["location"]["line"] for p in problems} == {7}  # the import of the missing module
    assert "No module named 'shop_missing_dependency'" in problems[0]["message"]
    assert {r["outcome"] for r in report["replay"]} == {"skipped"}
    assert exit_code == 2  # the tool could not decide: fails closed
    assert report["verdict"]["level"] == "error"
    lenient = tmp_path / "lenient.yml"
    lenient.write_text("on_error: pass\n")
    exit_code, report, _ = check(repo, recorded, extra=("--config", str(lenient)))
    assert exit_code == 2  # replay that could not run fails closed whatever on_error says


def test_replay_environment_is_scrubbed(
    recorded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("SOME_API_TOKEN", "t")
    repo = shop_repo(tmp_path, "env_probe")
    relative = os.path.relpath(sys.executable)  # runners start elsewhere: it must still be found
    exit_code, report, _ = check(repo, recorded, extra=("--python", relative))
    assert "TMP133" not in rules(report), report["findings"]
    assert set(outcomes(report).values()) == {OK}
    assert exit_code == 0


def test_hanging_replay_times_out_and_the_rest_go_on(recorded: Path, tmp_path: Path) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("order-done-1", "refund-1"):
        shutil.copy(recorded / f"{name}.json", folder)
    repo = shop_repo(tmp_path, "busy_loop")
    exit_code, report, _ = check(repo, folder, extra=("--replay-timeout", "1", "--jobs", "1"))
    assert outcomes(report) == {"order-done-1": "timeout", "refund-1": OK}
    [slow] = [r for r in report["replay"] if r["outcome"] == "timeout"]
    assert slow["message"] == "no result within 1 s"
    assert "TMP132" in rules(report)
    assert exit_code == 2


def test_cache_holds_binary_protobuf_and_is_reused(recorded: Path, tmp_path: Path) -> None:
    repo = shop_repo(tmp_path, "inserted")
    _, cold, _ = check(repo, recorded)
    cached = sorted((repo.parent / "cache").rglob("*.binpb"))
    assert len(cached) == len(ALL)
    cached[0].write_bytes(b"\xff damaged")  # a damaged entry is parsed again, not trusted
    _, warm, _ = check(repo, recorded)
    assert {r["history"]: r["outcome"] for r in warm["replay"]} == {
        r["history"]: r["outcome"] for r in cold["replay"]
    }
    assert all(r["outcome"] != "unreadable" for r in warm["replay"])
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    _, uncached, _ = check(repo, recorded, extra=("--cache", str(a_file)))  # a cache it cannot write
    assert outcomes(uncached) == outcomes(cold)


def test_only_affected_definitions_unless_replay_all(recorded: Path, tmp_path: Path) -> None:
    head = tmp_path / "head"
    shutil.copytree(REPLAY / "base", head, ignore=shutil.ignore_patterns("__pycache__"))
    (head / "shop" / "other.py").write_text(
        "from temporalio import workflow\n\n\n@workflow.defn\nclass Other:\n"
        "    @workflow.run\n    async def run(self) -> None:\n        return None\n"
    )
    make_repo(tmp_path / "repo", REPLAY / "base", head)
    _, report, _ = check(tmp_path / "repo", recorded)
    assert set(outcomes(report).values()) == {"skipped"}
    assert all("--replay-all" in r["message"] for r in report["replay"])
    _, everything, _ = check(tmp_path / "repo", recorded, extra=("--replay-all",))
    assert set(outcomes(everything).values()) == {OK}


def test_shards_merge_into_the_whole(recorded: Path, tmp_path: Path) -> None:
    repo = shop_repo(tmp_path, "inserted")
    _, whole, _ = check(repo, recorded)
    paths = []
    for i in (1, 2):
        out = tmp_path / f"shard{i}.json"
        run = invoke(
            "check",
            "--repo",
            repo,
            "--base",
            "main",
            "--histories",
            recorded,
            "--shard",
            f"{i}/2",
            "--format",
            "json",
            "-o",
            out,
            "--no-cache",
        )
        assert run.exit_code in (0, 1)
        paths.append(out)
    parts = [json.loads(p.read_text()) for p in paths]
    assert sum(len(p["replay"]) for p in parts) == len(ALL)
    assert all(p["replay"] for p in parts)  # the hash spreads five histories over both shards
    merged = invoke("merge", *paths, "--repo", repo, "--format", "json")
    assert merged.stdout, merged.stderr
    report = json.loads(merged.stdout)
    assert merged.exit_code == 1
    assert outcomes(report) == outcomes(whole)
    assert rules(report) == rules(whole)
    assert report["replay_summary"]["shards"] == ["1/2", "2/2"]
    half = json.loads(invoke("merge", paths[1], "--repo", repo, "--format", "json").stdout)
    [gap] = [f for f in half["findings"] if f["rule"] == "TMP134"]
    assert "shard(s) 1/2 missing" in gap["message"]
    assert half["verdict"]["level"] == "error"
    bad = invoke("merge", paths[0], tmp_path / "missing.json", "--repo", repo)
    assert bad.exit_code == 2 and "missing.json: cannot read" in bad.stderr


def test_export_and_live_counts(server: str, recorded: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    run = run_process(
        "export", "temporal", "--address", server, "--query", 'WorkflowType="Order"', "--out", out
    )
    assert run.exit_code == 0, run.stderr
    assert f"exported 4 histories to {out}" in run.stderr
    repo = shop_repo(tmp_path, "inserted")
    live = run_process(
        "check",
        "--repo",
        repo,
        "--base",
        "main",
        "--histories",
        out,
        "--temporal-address",
        server,
        "--format",
        "json",
        "--synthesize",
        "off",
        "--no-cache",
    )
    assert live.exit_code == 1, live.stderr
    report = json.loads(live.stdout)
    # The exported histories replay exactly as the client's own export.
    by_id = {Path(r["history"]).name.split("__")[0]: r["outcome"] for r in report["replay"]}
    _, direct, _ = check(repo, recorded)
    assert by_id == {k: v for k, v in outcomes(direct).items() if k != "refund-1"}
    [order] = [d for d in report["definitions"] if d["id"] == "Order"]
    assert order["in_flight"]["count"] == 2
    assert order["in_flight"]["source"].startswith(f"live count from {server}/default")
    assert order["in_flight"]["oldest_start"]
    assert any(step.startswith("Drain window for `Order`: 2 running") for step in report["plan"]["runbook"])


def test_live_source(server: str, recorded: Path, tmp_path: Path) -> None:
    repo = shop_repo(tmp_path, "inserted")
    spec = f"temporal://{server}/default?query=WorkflowType%3D%22Refund%22"
    run = run_process(
        "check", "--repo", repo, "--base", "main", "--histories", spec, "--format", "json", "--no-cache"
    )
    assert run.exit_code == 1, run.stderr
    report = json.loads(run.stdout)
    # Production results: the workflows the live source does not cover are synthesized from base.
    production = [r for r in report["replay"] if not r["synthesized"]]
    assert [r["outcome"] for r in production] == [OK]
    assert production[0]["history"].startswith(f"temporal://{server}/default/refund-1/")


@pytest.fixture(scope="module")
def s3(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_s3_server() as endpoint:
        for key, value in moto_env(endpoint).items():
            monkeypatch_module.setenv(key, value)
        yield endpoint


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_s3_source(s3: str, server: str, recorded: Path, tmp_path: Path) -> None:
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket="histories")
    for path in recorded.glob("*.json"):
        client.upload_file(str(path), "histories", f"prod/shop/{path.name}")
    client.put_object(Bucket="histories", Key="prod/shop/README.md", Body=b"not a history")
    repo = shop_repo(tmp_path, "inserted")
    _, report, _ = check(repo, "s3://histories/prod/")
    assert outcomes(report) == CASES["inserted"][0] | {"refund-1": OK}
    assert report["replay"][0]["history"].startswith("s3://histories/prod/shop/")
    # `export` writes where `check` reads: straight to the bucket.
    run = run_process(
        "export",
        "temporal",
        "--address",
        server,
        "--query",
        'WorkflowType="Refund"',
        "--out",
        "s3://histories/exported/",
        "--format",
        "binpb",
    )
    assert run.exit_code == 0, run.stderr
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="histories", Prefix="exported/")["Contents"]]
    assert len(keys) == 1 and keys[0].startswith("exported/refund-1__") and keys[0].endswith(".binpb")
    _, exported, _ = check(repo, "s3://histories/exported/")
    assert [r["outcome"] for r in exported["replay"]] == [OK]
    _, missing, _ = check(repo, "s3://no-such-bucket/x")
    [problem] = [f for f in missing["findings"] if f["rule"] == "TMP134"]
    assert "NoSuchBucket" in problem["message"]
    assert missing["verdict"]["level"] == "error"


def test_s3_histories_of_an_unchanged_definition(s3: str, recorded: Path, tmp_path: Path) -> None:
    """No definition changes: without --replay-all each S3 history is named, with it each replays, and
    the engine that takes none of them does not report the bucket as empty."""
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket="unchanged")
    for path in recorded.glob("*.json"):
        client.upload_file(str(path), "unchanged", f"prod/{path.name}")
    trees = []
    for side, text in (("base", "Shop.\n"), ("head", "The shop.\n")):
        shutil.copytree(REPLAY / "base", tmp_path / side, ignore=shutil.ignore_patterns("__pycache__"))
        (tmp_path / side / "README.md").write_text(text)
        trees.append(tmp_path / side)
    make_repo(tmp_path / "repo", *trees)
    exit_code, named, _ = check(tmp_path / "repo", "s3://unchanged/prod/")
    assert exit_code == 0
    assert {Path(r["history"]).stem: (r["outcome"], r["message"]) for r in named["replay"]} == dict.fromkeys(
        ALL, ("skipped", "not replayed: this change alters no Temporal workflow (pass --replay-all)")
    )
    assert f"no definition changed: {len(ALL)} histories not replayed (pass --replay-all)" in named["notes"]
    exit_code, everything, _ = check(tmp_path / "repo", "s3://unchanged/prod/", extra=("--replay-all",))
    assert exit_code == 0
    assert outcomes(everything) == dict.fromkeys(ALL, OK)
    assert not [n for n in everything["notes"] if "holds no history files" in n or "not replayed" in n]


def test_payload_data_never_reaches_failure_messages(recorded: Path, tmp_path: Path) -> None:
    repo = shop_repo(tmp_path, "leaks_input")
    log = tmp_path / "replay.jsonl"
    exit_code, report, stderr = check(repo, recorded, extra=("--replay-log", str(log)))
    [leak] = [r for r in report["replay"] if Path(r["history"]).stem == "order-done-2"]
    # What the head did, from facts: the exception's type and the head line that raised it.
    assert (leak["outcome"], leak["code"]) == (ERR, "RuntimeError")
    assert leak["message"] == "the head code raises `RuntimeError` at shop/workflows.py:25 in run()"
    [refund] = [r for r in report["replay"] if Path(r["history"]).stem == "refund-1"]
    assert (refund["outcome"], refund["code"]) == (ERR, "RuntimeError")
    assert refund["message"] == "the head code raises `RuntimeError` at shop/workflows.py:38 in run()"
    comment = invoke(
        "check",
        "--repo",
        repo,
        "--base",
        "main",
        "--histories",
        recorded,
        "--no-cache",
        "--synthesize",
        "off",
    ).stdout
    for text in (json.dumps(report), comment, stderr):
        for secret in (SECRET, "Bob Jones", "Hidden Lane"):
            assert secret not in text
    # The exception's words (which quote the input) are in no replay result and no finding; the
    # outline may quote the head's source line that raises it, which is code, not data.
    said = json.dumps([report["replay"], [f["message"] for f in report["findings"]]])
    assert "cannot handle" not in said and "cannot refund" not in said
    # The exception's own text is in the log the user asked for, with exact payload strings redacted.
    logged = {Path(line["history"]).stem: line for line in map(json.loads, log.read_text().splitlines())}
    assert sorted(logged) == ["order-done-2", "refund-1"]
    assert 'message: "cannot handle <redacted>"' in logged["order-done-2"]["message"]
    assert "cannot refund <redacted>" in logged["refund-1"]["message"]
    assert all(s not in log.read_text() for s in (SECRET, "Bob Jones", "Hidden Lane"))
    assert "TMP131" in rules(report)  # only a closed history fails: risky
    # The raising guards come before every command: an execution in flight whose input takes them
    # (order-done-2's and refund-1's inputs do; they are closed here) fails every workflow task from
    # then on, so the static check blocks the change (TMP144) whatever the recorded ones show.
    assert [f["location"]["line"] for f in report["findings"] if f["rule"] == "TMP144"] == [24, 37]
    assert exit_code == 1


def _wrapper(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_interpreter_without_temporalio_is_one_line(recorded: Path, tmp_path: Path) -> None:
    bare = _wrapper(tmp_path / "bare-python", f'exec {sys.executable} -S "$@"')  # no site-packages
    repo = shop_repo(tmp_path, "inserted")
    run = invoke("check", "--repo", repo, "--base", "main", "--histories", recorded, "--python", bare)
    assert run.exit_code == 2
    assert run.stderr.strip() == (
        f"inflight-guard: error: --python {bare}: cannot import temporalio (install your worker's dependencies)"
    )


def test_runner_that_cannot_start_is_one_finding(recorded: Path, tmp_path: Path) -> None:
    broken = _wrapper(
        tmp_path / "broken-python",
        f'case "$*" in *runner.py*) echo "RuntimeError: boom" >&2; exit 3;; esac\nexec {sys.executable} "$@"',
    )
    repo = shop_repo(tmp_path, "inserted")
    exit_code, report, _ = check(repo, recorded, extra=("--python", str(broken)))
    [problem] = [f for f in report["findings"] if f["rule"] == "TMP135"]
    assert problem["message"] == (
        f"The replay runner could not start in {broken}: RuntimeError: boom. No history was replayed."
    )
    assert {r["outcome"] for r in report["replay"]} == {"skipped"}
    assert exit_code == 2


def test_workflow_the_sdk_refuses_is_one_finding(recorded: Path, tmp_path: Path) -> None:
    repo = shop_repo(tmp_path, "module_level_random")
    exit_code, report, _ = check(repo, recorded)
    problems = [f for f in report["findings"] if f["rule"] == "TMP133"]
    assert {p["definition"] for p in problems} == {"Order", "Refund"}
    assert all("Failed validating workflow" in p["message"] for p in problems)
    assert exit_code == 2


def test_history_too_big_to_read_in_time_fails_closed(recorded: Path, tmp_path: Path) -> None:
    big = json.loads((recorded / "order-waiting.json").read_text())
    started = big["events"][0]["workflowExecutionStartedEventAttributes"]
    started["memo"] = {"fields": {"pad": {"metadata": {}, "data": "QUFB" * 12_000_000}}}  # ~48 MB
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "huge.json").write_text(json.dumps(big))
    repo = shop_repo(tmp_path, "inserted")
    exit_code, report, _ = check(repo, folder, extra=("--replay-timeout", "0.1", "--no-cache"))
    [result] = report["replay"]
    assert result["outcome"] == "timeout" and result["definition"] is None
    [problem] = [f for f in report["findings"] if f["rule"] == "TMP136"]
    assert "1 histories ended with timeout" in problem["message"]
    assert exit_code == 2


def test_monorepo_services_with_same_module_names(recorded: Path, tmp_path: Path) -> None:
    """Two services, each a `workflows.py` without packages; a root `__init__.py`; a stray symlink."""
    text = (REPLAY / "base" / "shop" / "workflows.py").read_text()
    order, refund = text.split('@workflow.defn(name="Refund")')
    refund = order.split("@workflow.defn")[0] + '@workflow.defn(name="Refund")' + refund

    def tree(root: Path, order_text: str) -> Path:
        shutil.copytree(REPLAY / "base" / "shop", root / "shop", ignore=shutil.ignore_patterns("__pycache__"))
        (root / "shop" / "workflows.py").unlink()
        for service, body in (("orders", order_text), ("refunds", refund)):
            (root / "services" / service).mkdir(parents=True)
            (root / "services" / service / "workflows.py").write_text(body)
        (root / "__init__.py").write_text("")
        (root / "hostname").symlink_to("/etc/hostname")  # points out of the tree: not materialized
        return root

    inserted = (REPLAY / "heads" / "inserted.py").read_text().split('@workflow.defn(name="Refund")')[0]
    make_repo(tmp_path / "repo", tree(tmp_path / "base", order), tree(tmp_path / "head", inserted))
    # --replay-all: the unchanged refunds service is replayed too, its module also named `workflows`.
    exit_code, report, _ = check(tmp_path / "repo", recorded, extra=("--replay-all",))
    assert "TMP133" not in rules(report), report["findings"]
    assert outcomes(report) == CASES["inserted"][0] | {"refund-1": OK}
    assert exit_code == 1


def test_relative_sources_name_histories_as_given(
    recorded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(recorded, tmp_path / "exports")
    repo = shop_repo(tmp_path, "inserted")
    monkeypatch.chdir(tmp_path)
    _, report, _ = check(repo, "exports", "exports/*.json")  # the same files twice: read once
    assert sorted(r["history"] for r in report["replay"]) == sorted(f"exports/{h}.json" for h in ALL)
    assert outcomes(report) == CASES["inserted"][0] | {"refund-1": OK}
