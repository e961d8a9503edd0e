"""`export --latest` and `--histories .../LATEST`: the pointer the export writes beside its folder,
read back so that only the newest export is replayed. Real exports of real executions: moto in
server mode runs the state machine and holds the bucket; `export stepfunctions` is the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import invoke
from servers import moto_executing

from bot.errors import UserError
from bot.histories import ReplayOptions, SourceStats, iter_histories, resolve_pointer

ROLE = "arn:aws:iam::123456789012:role/sfn"
PASS = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    with moto_executing() as url:
        yield url


def client(service: str) -> Any:
    import boto3

    return boto3.client(service)


def run_executions(arn: str, *names: str) -> None:
    sfn = client("stepfunctions")
    started = [sfn.start_execution(stateMachineArn=arn, name=n, input="{}")["executionArn"] for n in names]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        sfn.describe_execution(executionArn=a)["status"] == "RUNNING" for a in started
    ):
        time.sleep(0.02)


def export(out: str, arn: str, *args: str) -> str:
    run = invoke("export", "stepfunctions", "--state-machine-arn", arn, "--out", out, *args)
    assert run.exit_code == 0, run.stderr
    return run.stderr


def names(spec: str, tmp: Path) -> tuple[list[str], SourceStats]:
    stats = SourceStats()
    found = []
    for item in iter_histories(ReplayOptions(sources=[spec]), tmp, stats):
        found.append(item.name)
        item.release()
    return sorted(found), stats


def test_latest_names_the_newest_export_only(aws: str, tmp_path: Path) -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket="histories")
    arn = client("stepfunctions").create_state_machine(
        name="orders", definition=json.dumps(PASS), roleArn=ROLE
    )["stateMachineArn"]
    run_executions(arn, "day1-a", "day1-b")
    said = export("s3://histories/prod/2026-11-24/", arn, "--latest")
    assert "s3://histories/prod/LATEST now names s3://histories/prod/2026-11-24/" in said
    run_executions(arn, "day2-a")
    export("s3://histories/prod/2026-11-25/", arn, "--latest", "--limit", "1")
    pointer = s3.get_object(Bucket="histories", Key="prod/LATEST")["Body"].read()
    assert pointer == b"2026-11-25/\n"
    # Both exports are in the bucket; the pointer reads only the newest.
    everything, _ = names("s3://histories/prod/", tmp_path)
    assert len(everything) == 3
    latest, stats = names("s3://histories/prod/LATEST", tmp_path)
    assert latest == ["s3://histories/prod/2026-11-25/orders/day2-a.json"]
    assert stats.errors == [] and stats.empty == []
    # An export without --latest leaves the pointer where it was.
    export("s3://histories/prod/2026-11-26/", arn, "--limit", "1")
    assert resolve_pointer("s3://histories/prod/LATEST") == "s3://histories/prod/2026-11-25/"


def test_a_missing_or_hostile_pointer_is_a_source_error(aws: str, tmp_path: Path) -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket="pointers")
    _, stats = names("s3://pointers/prod/LATEST", tmp_path)
    assert len(stats.errors) == 1
    assert stats.errors[0].startswith("--histories s3://pointers/prod/LATEST: S3 said NoSuchKey")
    for body in (b"../other-team/\n", b"s3://elsewhere/x/\n", b"/etc/\n", b""):
        s3.put_object(Bucket="pointers", Key="prod/LATEST", Body=body)
        with pytest.raises(UserError, match="the pointer must name one export folder beside it"):
            resolve_pointer("s3://pointers/prod/LATEST")


def test_a_local_export_folder_gets_a_pointer_too(aws: str, tmp_path: Path) -> None:
    arn = client("stepfunctions").create_state_machine(
        name="local", definition=json.dumps(PASS), roleArn=ROLE
    )["stateMachineArn"]
    run_executions(arn, "one")
    export(str(tmp_path / "exports" / "2026-11-24"), arn)
    export(str(tmp_path / "exports" / "2026-11-25"), arn, "--latest")
    assert (tmp_path / "exports" / "LATEST").read_text() == "2026-11-25/\n"
    found, stats = names(str(tmp_path / "exports" / "LATEST"), tmp_path)
    assert found == [str(tmp_path / "exports" / "2026-11-25" / "local" / "one.json")]
    assert stats.errors == []


def _demo_check(tmp_path: Path, config: str) -> dict[str, Any]:
    """`check` of the demo repository with `config` and no --histories: the JSON report (breaking)."""
    from cli_support import run_process

    from bot.demo import BRANCH, build_repo

    repo = build_repo(tmp_path / "repo")
    (tmp_path / "config.yml").write_text(config)
    out = tmp_path / "report.json"
    run = run_process(
        "check", "--repo", repo, "--base", "main", "--head", BRANCH, "--config", tmp_path / "config.yml",
        "--synthesize", "off", "--format", "json", "-o", out,
    )  # fmt: skip
    assert run.exit_code == 1, run.stderr
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def test_the_config_key_reads_the_pointer_too(tmp_path: Path) -> None:
    """`histories:` in the config, used when no --histories is given: a LATEST pointer there
    replays the newest export only (the demo's Temporal histories, really replayed)."""
    import shutil

    from bot.demo import HISTORIES
    from bot.histories import write_latest

    old, new = tmp_path / "exports" / "2026-11-24", tmp_path / "exports" / "2026-11-25"
    shutil.copytree(HISTORIES, new)
    old.mkdir(parents=True)
    shutil.copy(next(iter(sorted(HISTORIES.glob("*.json")))), old / "yesterday.json")
    assert write_latest(str(new)) == str(tmp_path / "exports" / "LATEST")
    report = _demo_check(tmp_path, f"histories: [{tmp_path / 'exports' / 'LATEST'}]\n")
    replayed = sorted(r["history"] for r in report["replay"])
    assert replayed == sorted(str(new / p.name) for p in HISTORIES.glob("*.json"))
    assert f"histories from the config: {tmp_path / 'exports' / 'LATEST'}" in report["notes"]


def test_a_path_section_adds_its_sources_only_when_the_change_touches_it(tmp_path: Path) -> None:
    """`paths.sections[].histories`: the sources of the app the change touches are replayed; those of
    an app it leaves alone are not even opened (one names a folder that does not exist)."""
    import shutil

    from bot.demo import HISTORIES

    orders = tmp_path / "orders-histories"
    shutil.copytree(HISTORIES, orders)
    report = _demo_check(
        tmp_path,
        "paths:\n"
        f"  - glob: 'orders/**'\n    histories: [{orders}]\n"
        f"  - glob: 'billing/**'\n    histories: [{tmp_path / 'no-such-folder'}]\n",
    )
    assert sorted(r["history"] for r in report["replay"]) == sorted(
        str(orders / p.name) for p in HISTORIES.glob("*.json")
    )
    assert f"histories from the config: {orders}" in report["notes"]
