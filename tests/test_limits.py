"""Hostile input cannot exhaust the machine, crash the run or hide a change: it fails closed.

Every case runs the real CLI in a subprocess (a crash or a traceback shows) under an address-space
limit, so a regression fails fast instead of eating the machine.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
import pytest
import yaml
from conftest import ROOT
from gitrepo import commit, make_repo
from servers import moto_env, moto_s3_server
from sources import BASE, BREAKING

from bot import yamlsafe
from bot.engines.stepfunctions.source import load_yaml
from bot.histories import S3_DEADLINE
from bot.repo import MANY_NAMES, SourceTree, grep_importers

MEMORY = 2 << 30  # bytes of address space the CLI may map


@dataclass
class Checked:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        return dict(json.loads(self.stdout))

    def findings(self, rule: str) -> list[dict[str, Any]]:
        return [f for f in self.report["findings"] if f["rule"] == rule]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def check(repo: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Checked:
    """Run `inflight-guard check` on main..feature of `repo` (JSON report) in a bounded subprocess."""
    environ = {k: v for k, v in os.environ.items() if k != "INFLIGHT_GUARD_DEBUG"}
    # Static: these tests are about what the tool reads and how it bounds it (tests/test_synthesis.py
    # covers synthesis).
    refs = ["--repo", str(repo), "--base", "main", "--head", "feature", "--format", "json"]
    refs += ["--synthesize", "off"]
    out = subprocess.run(
        [sys.executable, "-m", "bot", "check", *refs, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**environ, **(env or {})},
        timeout=timeout,
        preexec_fn=_limit_memory,
        check=False,
    )
    assert "Traceback" not in out.stderr, out.stderr
    assert "internal error" not in out.stderr, out.stderr
    return Checked(out.returncode, out.stdout, out.stderr)


def error_line(run: Checked) -> str:
    """The one line a user error prints (exit 2, nothing on stdout)."""
    assert run.exit_code == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    return lines[0]


# --- YAML: alias bombs, size, depth --------------------------------------------------------------


def laughs(indent: str = "", levels: int = 9) -> str:
    """The "billion laughs" YAML: each level holds nine aliases of the one before (9**levels strings)."""
    lines = [f'{indent}l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{indent}l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


ASL = "StartAt: A\nStates:\n  A:\n    Type: Pass\n    End: true\n"
TEMPLATE = (
    "Resources:\n  Flow:\n    Type: AWS::StepFunctions::StateMachine\n    Properties:\n"
    "      Definition:\n        StartAt: A\n        States:\n          A: {Type: Pass, End: true}\n"
)
CONFIG = ".github/inflight-guard.yml"


def test_alias_bomb_in_an_asl_file_is_an_error_at_its_first_alias(tmp_path: Path) -> None:
    head = "Comment: x\n" + laughs() + ASL.replace("End: true", "End: true\n    Result: *l8")
    repo = make_repo(tmp_path / "repo", {"sm/flow.asl.yaml": ASL}, {"sm/flow.asl.yaml": head})
    run = check(Path(repo.working_dir))
    assert run.exit_code == 2
    [finding] = run.findings("SFN001")
    assert finding["location"]["path"] == "sm/flow.asl.yaml"
    assert finding["location"]["line"] == 3  # `l1: &l1 [*l0, ...]`
    assert "aliases expand it to over 1,000,000 nodes" in finding["message"]
    assert run.report["verdict"]["level"] == "error"


def test_alias_bomb_in_a_template_is_an_error_at_its_first_alias(tmp_path: Path) -> None:
    head = "Metadata:\n" + laughs("  ") + TEMPLATE.replace("End: true}", "End: true, Result: *l8}")
    repo = make_repo(tmp_path / "repo", {"template.yaml": TEMPLATE}, {"template.yaml": head})
    run = check(Path(repo.working_dir))
    [finding] = run.findings("SFN001")
    assert (finding["location"]["path"], finding["location"]["line"]) == ("template.yaml", 3)
    assert "aliases expand it to over 1,000,000 nodes" in finding["message"]


def test_alias_bomb_in_the_config_is_one_error_line(tmp_path: Path) -> None:
    config = "version: 1\nextra:\n" + laughs("  ")
    repo = make_repo(tmp_path / "repo", {**BASE, CONFIG: config}, BREAKING)
    line = error_line(check(Path(repo.working_dir)))
    assert line.startswith(f"inflight-guard: error: {CONFIG} (base ")
    assert line.endswith(
        ":4: YAML refused: aliases expand it to over 1,000,000 nodes (first alias on this line)"
    )


def test_alias_bomb_in_a_rule_pack_is_one_error_line(tmp_path: Path) -> None:
    pack = "engine: temporal\nrules: []\nextra:\n" + laughs("  ")
    base = {**BASE, CONFIG: "rules:\n  packs: [.github/ours.yaml]\n", ".github/ours.yaml": pack}
    repo = make_repo(tmp_path / "repo", base, BREAKING)
    line = error_line(check(Path(repo.working_dir)))
    assert line == (
        "inflight-guard: error: .github/ours.yaml:5: "
        "YAML refused: aliases expand it to over 1,000,000 nodes (first alias on this line)"
    )


@pytest.mark.parametrize(
    ("path", "text", "line"),
    [
        ("sm/flow.asl.yaml", ASL.replace("End: true", "End: true\n    Result: " + "[" * 50_000), 6),
        (
            "sm/flow.asl.json",
            '{"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": ' + "[" * 50_000,
            1,
        ),
    ],
    ids=["yaml", "json"],
)
def test_deeply_nested_asl_is_an_error_finding(tmp_path: Path, path: str, text: str, line: int) -> None:
    base = (
        ASL if path.endswith(".yaml") else '{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}'
    )
    text += "]" * 50_000 + ("\n" if path.endswith(".yaml") else ', "End": true}}}')
    repo = make_repo(tmp_path / "repo", {path: base}, {path: text})
    run = check(Path(repo.working_dir))
    [finding] = run.findings("SFN001")
    assert (finding["location"]["path"], finding["location"]["line"]) == (path, line)
    assert "nested too deeply" in finding["message"]


def test_deeply_nested_config_is_one_error_line(tmp_path: Path) -> None:
    config = "version: 1\nextra: " + "[" * 50_000 + "]" * 50_000 + "\n"
    repo = make_repo(tmp_path / "repo", {**BASE, CONFIG: config}, BREAKING)
    line = error_line(check(Path(repo.working_dir)))
    assert line.endswith(":2: YAML refused: nested too deeply to read")


def test_shared_anchors_within_the_budget_load_once_with_their_lines() -> None:
    text = "a: &x {k: 1}\nb: *x\nc: [*x, *x]\n"
    node, data = yamlsafe.load(text)
    assert data == {"a": {"k": 1}, "b": {"k": 1}, "c": [{"k": 1}, {"k": 1}]}
    assert data["a"] is data["b"]  # constructed from the composed graph: one object, not four
    assert node is not None and yamlsafe.expanded_size(node, 100) == 17
    doc = load_yaml(text)
    # below an alias the alias's own line stands (the anchored mapping is walked once)
    assert (doc.line(("a", "k")), doc.line(("b", "k"))) == (1, 2)


@pytest.mark.parametrize(
    ("text", "problem", "line"),
    [
        ("a: &a [1, *a]\n", "an alias inside its own anchor", 1),
        ("x: 1\n" + laughs(levels=7), "aliases expand it to over 1,000,000 nodes", 3),
        ("x: " + "y" * 11_000_000 + "\n", "over the 10,000,000-byte limit", 1),
    ],
    ids=["recursive", "laughs", "size"],
)
def test_unbounded_yaml_is_refused_before_it_is_built(text: str, problem: str, line: int) -> None:
    with pytest.raises(yamlsafe.YamlUnbounded) as caught:
        yamlsafe.load(text)
    assert problem in str(caught.value.problem)
    assert caught.value.line == line
    assert isinstance(caught.value, yaml.YAMLError)


# --- recursion: expressions deeper than Python's stack ---------------------------------------------


def _in_run(files: dict[str, str], statement: str) -> dict[str, str]:
    """`files` with `statement` added to the workflow's run method, just before its return."""
    text = files["app/workflows.py"].replace(
        '        return "done"', f'        {statement}\n        return "done"'
    )
    return {**files, "app/workflows.py": text}


def test_expression_too_deep_to_parse_is_the_files_parse_error(tmp_path: Path) -> None:
    head = _in_run(BREAKING, "total = " + "+".join(["1"] * 5000))
    repo = make_repo(tmp_path / "repo", BASE, head)
    run = check(Path(repo.working_dir))
    [finding] = run.findings("TMP001")
    assert (finding["location"]["path"], finding["location"]["line"]) == ("app/workflows.py", 1)
    assert "nested too deeply" in finding["message"]
    assert run.report["verdict"]["level"] == "error"


def test_expression_too_deep_to_walk_is_the_files_parse_error_at_its_line(tmp_path: Path) -> None:
    # Parses (the parser's limit is higher), but is deeper than a recursive walk can follow.
    head = _in_run(BREAKING, "total = f" + "()" * 900)
    repo = make_repo(tmp_path / "repo", BASE, head)
    run = check(Path(repo.working_dir))
    if run.exit_code == 1:  # a walker that no longer recurses finds the inserted activity
        assert [f["location"]["line"] for f in run.findings("TMP101")] == [16]
        return
    [finding] = run.findings("TMP001")
    assert (finding["location"]["path"], finding["location"]["line"]) == ("app/workflows.py", 19)
    assert "nested too deeply" in finding["message"]
    assert run.exit_code == 2


def test_dag_file_too_deep_to_parse_is_a_load_error_at_the_file(tmp_path: Path) -> None:
    dag = (
        "from airflow import DAG\nfrom airflow.operators.empty import EmptyOperator\n\n"
        "with DAG('etl') as dag:\n    a = EmptyOperator(task_id='a')\n"
    )
    deep = dag + "    b = EmptyOperator(task_id='b')\n    total = " + "+".join(["1"] * 5000) + "\n"
    repo = make_repo(tmp_path / "repo", {"dags/etl.py": dag}, {"dags/etl.py": deep})
    run = check(Path(repo.working_dir))
    [finding] = run.findings("AFL002")
    assert (finding["location"]["path"], finding["location"]["line"]) == ("dags/etl.py", 1)
    assert "nested too deeply" in finding["message"]
    assert run.report["verdict"]["level"] in ("breaking", "error")


# --- git: submodules, odd names, huge changes -------------------------------------------------------

ELSEWHERE = "1234567890abcdef1234567890abcdef12345678"  # a submodule commit: not an object of this repo


def _gitlinks(repo: git.Repo, *paths: str) -> None:
    for path in paths:
        repo.git.update_index("--add", "--cacheinfo", f"160000,{ELSEWHERE},{path}")
    repo.git.commit("-m", "submodules named like source files")


def test_submodules_named_like_source_files_are_not_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", BASE, BREAKING)
    _gitlinks(repo, "sub.py", "app/sub.py", "sub.json", "sub.yaml", "sm/flow.asl.json")
    run = check(Path(repo.working_dir))
    assert run.exit_code == 1
    assert [(f["rule"], f["location"]["path"], f["location"]["line"]) for f in run.report["findings"]] == [
        ("TMP101", "app/workflows.py", 16)
    ]


def test_a_submodule_where_the_config_belongs_is_one_error_line(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", BASE, BASE)
    repo.git.checkout("main")
    _gitlinks(repo, CONFIG)
    repo.git.checkout("feature")
    repo.git.merge("main")
    commit(repo, BREAKING, "insert an activity")
    line = error_line(check(Path(repo.working_dir)))
    assert line.startswith(f"inflight-guard: error: {CONFIG} (") and line.endswith(
        "): not a file (a submodule)"
    )


def _moved(files: dict[str, str], path: str) -> dict[str, str]:
    return {path if p == "app/workflows.py" else p: text for p, text in files.items()}


def test_a_workflow_file_with_a_newline_in_its_name_is_checked(tmp_path: Path) -> None:
    name = "orders/work\nflows.py"
    repo = make_repo(tmp_path / "repo", _moved(BASE, name), _moved(BREAKING, name))
    run = check(Path(repo.working_dir))
    assert run.exit_code == 1
    assert [(f["rule"], f["location"]["path"]) for f in run.report["findings"]] == [("TMP101", name)]


def test_a_renamed_workflow_file_is_paired_with_its_base(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", BASE, _moved(BREAKING, "app/order\tflows.py"))
    run = check(Path(repo.working_dir))
    assert run.exit_code == 1
    [finding] = run.report["findings"]
    assert (finding["rule"], finding["location"]["path"]) == ("TMP101", "app/order\tflows.py")


def test_a_changed_name_that_is_not_utf8_fails_closed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", BASE, BREAKING)
    folder = os.fsencode(repo.working_dir)
    with open(folder + b"/app/caf\xe9.py", "w", encoding="utf-8") as f:  # noqa: PTH123 - a bytes name
        f.write(BREAKING["app/workflows.py"].replace("OrderWorkflow", "CafeWorkflow"))
    repo.git.add("--all")
    repo.git.commit("-m", "a Latin-1 file name")
    line = error_line(check(Path(repo.working_dir)))
    assert line.startswith("inflight-guard: error: app/caf\\xe9.py: this changed file's name is not UTF-8")


def test_ten_thousand_changed_files_keep_the_verdict(tmp_path: Path) -> None:
    def files(value: int) -> dict[str, str]:
        out = {"dags/etl.py": "from airflow import DAG\n\nwith DAG('etl') as dag:\n    pass\n"}
        for i in range(10_000):
            folder = f"part_{i % 40:02d}"
            if i % 5 == 3:
                out[f"data/{folder}/settings_file_number_{i:05d}.json"] = f'{{"value": {value}}}\n'
            elif i % 5 == 4:
                out[f"notes/{folder}/note_file_number_{i:05d}.txt"] = f"{value}\n"
            else:  # long module names: one alternation of them all is past argv's 128 KiB per argument
                out[f"services/{folder}/module_with_a_rather_long_name_{i:05d}.py"] = f"VALUE = {value}\n"
        return out

    repo = make_repo(tmp_path / "repo", {**BASE, **files(1)}, {**BREAKING, **files(2)})
    run = check(Path(repo.working_dir), timeout=300)
    assert run.exit_code == 1, run.stderr
    temporal = [f for f in run.report["findings"] if f["rule"].startswith("TMP")]
    assert [(f["rule"], f["location"]["path"], f["location"]["line"]) for f in temporal] == [
        ("TMP101", "app/workflows.py", 16)
    ]


# --- histories: size cap, S3 that never answers ------------------------------------------------------

MACHINE = '{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}\n'
MACHINE_HEAD = '{"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 1, "End": true}}}\n'
NOT_A_HISTORY = '{"executionArn": "arn:aws:states:us-east-1:1:execution:flow:x"}\n'


def _sfn_repo(tmp_path: Path, config: str | None = None) -> Path:
    extra = {CONFIG: config} if config else {}
    base = {"sm/flow.asl.json": MACHINE, **extra}
    return Path(make_repo(tmp_path / "repo", base, {"sm/flow.asl.json": MACHINE_HEAD, **extra}).working_dir)


def _source_errors(run: Checked) -> list[str]:
    return [f["message"] for f in run.findings("SFN132")]


def test_a_history_over_the_cap_is_not_read_and_fails_closed(tmp_path: Path) -> None:
    folder = tmp_path / "histories"
    folder.mkdir()
    huge = folder / "huge.json"
    with huge.open("wb") as f:  # sparse: 500 MB that take no disk, and would take gigabytes to parse
        f.truncate(500 * 1024 * 1024)
    (folder / "small.json").write_text(NOT_A_HISTORY)
    run = check(_sfn_repo(tmp_path), "--histories", str(folder))
    assert _source_errors(run) == [
        f"--histories {folder}: {folder}/huge.json is 524,288,000 bytes, over the 67,108,864-byte limit: "
        "not read (raise limits.max_history_bytes in the config to replay it)"
    ]
    assert [(r["history"], r["outcome"]) for r in run.report["replay"]] == [
        (f"{folder}/small.json", "unreadable")
    ]
    assert run.exit_code == 2 and run.report["verdict"]["level"] == "error"


def test_the_history_cap_comes_from_the_config(tmp_path: Path) -> None:
    folder = tmp_path / "histories"
    folder.mkdir()
    padded = NOT_A_HISTORY + " " * 2000
    (folder / "padded.json").write_text(padded)
    repo = _sfn_repo(tmp_path, "limits:\n  max_history_bytes: 1000\n")
    run = check(repo, "--histories", str(folder))
    [message] = _source_errors(run)
    assert f"padded.json is {len(padded):,} bytes, over the 1,000-byte limit" in message
    assert run.report["replay"] == []


def test_an_s3_history_over_the_cap_is_refused_from_the_listing(tmp_path: Path) -> None:
    import boto3

    repo = _sfn_repo(tmp_path, "limits:\n  max_history_bytes: 1000\n")
    with moto_s3_server() as url:
        env = moto_env(url)
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        s3.create_bucket(Bucket="histories")
        big = NOT_A_HISTORY + " " * 5000
        s3.put_object(Bucket="histories", Key="prod/big.json", Body=big)
        s3.put_object(Bucket="histories", Key="prod/small.json", Body=NOT_A_HISTORY)
        run = check(repo, "--histories", "s3://histories/prod/", env=env)
    [message] = _source_errors(run)
    assert message.startswith(
        f"--histories s3://histories/prod/: s3://histories/prod/big.json is {len(big):,} bytes"
    )
    assert [(r["history"], r["outcome"]) for r in run.report["replay"]] == [
        ("s3://histories/prod/small.json", "unreadable")
    ]
    [finding] = run.findings("SFN132")
    assert finding["location"]["path"] == "s3://histories/prod/"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback TCP server that accepts every connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_an_s3_source_that_never_answers_is_one_error_and_the_run_goes_on(
    tmp_path: Path, silent_server: str
) -> None:
    folder = tmp_path / "histories"
    folder.mkdir()
    (folder / "local.json").write_text(NOT_A_HISTORY)
    env = {
        "AWS_ENDPOINT_URL": silent_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    repo = _sfn_repo(tmp_path, 'stepfunctions:\n  live_counts: "off"\n')  # only the history source calls AWS
    run = check(repo, "--histories", "s3://histories/prod/", "--histories", str(folder), env=env)
    assert _source_errors(run) == [f"--histories s3://histories/prod/: no answer within {S3_DEADLINE:.0f} s"]
    # the next source was read: the run went on
    assert [(r["history"], r["outcome"]) for r in run.report["replay"]] == [
        (f"{folder}/local.json", "unreadable")
    ]
    assert run.exit_code == 2 and run.report["verdict"]["level"] == "error"


def test_many_module_names_find_the_same_importers_as_few(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/helper_0.py": "X = 0\n",
        "pkg/helper_7.py": "X = 7\n",
        "pkg/direct.py": "from pkg import helper_0\n",
        "pkg/bare.py": "from pkg import (\n    other,\n    helper_7,\n)\n",
        "pkg/aliased.py": "import pkg.helper_7 as seven\n",
        "pkg/mentions.py": "NAME = 'helper_0'\n",  # not an import line
        "pkg/unrelated.py": "import os\n",
    }
    repo = make_repo(tmp_path / "repo", files, {**files, "pkg/helper_0.py": "X = 1\n"})
    trees = [
        SourceTree(repo, repo.commit(ref), side) for ref, side in (("main", "base"), ("feature", "head"))
    ]
    wanted = {"pkg.helper_0", "pkg.helper_7"}
    few = grep_importers(trees, wanted)
    many = grep_importers(trees, wanted | {f"pkg.absent_{i}" for i in range(MANY_NAMES + 1)})
    expected = {"pkg/direct.py", "pkg/bare.py", "pkg/aliased.py"}
    assert few == many == [expected, expected]
