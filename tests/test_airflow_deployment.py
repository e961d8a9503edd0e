"""Pinning read from the deployment: the repository's airflow.cfg (as Airflow's own config parser reads
it), the exported runs' `bundle_version`, and the tool config that wins over both."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from airflow_env import AIRFLOW_3, airflow_python
from gitrepo import make_repo

from bot.engines.airflow.deployment import parse_cfg
from bot.histories import ReplayOptions
from bot.model import Report
from bot.pipeline import CheckOptions, run_check

GIT = "airflow.providers.git.bundles.git.GitDagBundle"
LOCAL = "airflow.dag_processing.bundles.local.LocalDagBundle"


def _cfg(bundles: list[dict[str, Any]] | None, disabled: str | None = None, indent: bool = True) -> str:
    lines = ["[core]", "load_examples = False", "", "[dag_processor]"]
    if bundles is not None:
        text = json.dumps(bundles, indent=2) if indent else json.dumps(bundles)
        if indent:  # the multi-line form Airflow's docs show: continuation lines indented
            text = text.replace("\n", "\n    ")
        lines.append(f"dag_bundle_config_list = {text}")
    if disabled is not None:
        lines.append(f"disable_bundle_versioning = {disabled}")
    return "\n".join(lines) + "\n"


CFGS = {
    "git": _cfg([{"name": "repo", "classpath": GIT, "kwargs": {"subdir": "dags", "tracking_ref": "main"}}]),
    "git_one_line": _cfg([{"name": "repo", "classpath": GIT, "kwargs": {}}], indent=False),
    "local": _cfg([{"name": "dags-folder", "classpath": LOCAL, "kwargs": {}}]),
    "git_disabled": _cfg([{"name": "repo", "classpath": GIT, "kwargs": {}}], disabled="True"),
    "git_enabled_t": _cfg([{"name": "repo", "classpath": GIT, "kwargs": {}}], disabled="f"),
    "mixed": _cfg(
        [
            {"name": "repo", "classpath": GIT, "kwargs": {"subdir": "dags/versioned"}},
            {"name": "dags-folder", "classpath": LOCAL, "kwargs": {}},
        ]
    ),
    "nothing": _cfg(None),
    "unindented": _cfg([{"name": "repo", "classpath": GIT, "kwargs": {}}], indent=False).replace(
        "[{", "[\n{"
    ),
    "bad_json": '[dag_processor]\ndag_bundle_config_list = [{"name": repo}]\n',
    "bad_bool": _cfg([{"name": "repo", "classpath": GIT, "kwargs": {}}], disabled="maybe"),
    "no_kwargs": _cfg([{"name": "repo", "classpath": GIT}]),
    "same_name_twice": _cfg(
        [{"name": "repo", "classpath": GIT, "kwargs": {}}, {"name": "repo", "classpath": LOCAL, "kwargs": {}}]
    ),
}

# Airflow's own reading of each file: its config parser, the bundle list it would instantiate.
PROBE = """
import json, sys
from airflow.configuration import AirflowConfigParser
from airflow.dag_processing.bundles.local import LocalDagBundle
from airflow.dag_processing.bundles.manager import _parse_bundle_config
out = {"local_versioning": LocalDagBundle.supports_versioning}
for path in sys.argv[1:]:
    c = AirflowConfigParser()
    try:
        c.read(path)
        items = _parse_bundle_config(c.getjson("dag_processor", "dag_bundle_config_list"))
        disabled = c.getboolean("dag_processor", "disable_bundle_versioning")
        out[path] = {"bundles": [[b.classpath, (b.kwargs or {}).get("subdir") or ""] for b in items],
                     "disabled": disabled}
    except Exception as exc:
        out[path] = {"error": type(exc).__name__}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def python() -> str:
    return airflow_python(AIRFLOW_3)


@pytest.fixture(scope="module")
def airflow_reads(python: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("cfgs")
    paths = []
    for name, text in CFGS.items():
        (root / f"{name}.cfg").write_text(text)
        paths.append(str(root / f"{name}.cfg"))
    proc = subprocess.run(
        [python, "-c", PROBE, *paths],
        capture_output=True,
        text=True,
        check=True,
        env={"AIRFLOW_HOME": str(root / "home"), "PATH": "/usr/bin:/bin"},
    )
    answer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {Path(k).stem if k.endswith(".cfg") else k: v for k, v in answer.items()}


@pytest.mark.parametrize("name", sorted(CFGS))
def test_cfg_read_as_airflow_reads_it(name: str, airflow_reads: dict[str, Any]) -> None:
    theirs = airflow_reads[name]
    mine = parse_cfg("airflow.cfg", CFGS[name])
    if "error" in theirs:  # Airflow refuses the file: the check says so at the setting's line
        assert mine.problem is not None
        assert mine.versioned("dags/x.py") is False
        return
    assert mine.problem is None
    if mine.bundles is None:  # unset: Airflow's default, the unversioned dags-folder bundle
        assert [c for c, _ in theirs["bundles"]] == [LOCAL]
        assert mine.versioned("dags/x.py") is None
    else:
        assert [[b.classpath, b.subdir] for b in mine.bundles] == theirs["bundles"]
    assert bool(mine.disabled) == theirs["disabled"]
    assert airflow_reads["local_versioning"] is False  # LocalDagBundle stores no version on a run


def test_mixed_bundles_pin_by_the_git_bundles_subdir() -> None:
    mixed = parse_cfg("airflow.cfg", CFGS["mixed"])
    assert mixed.versioned("dags/versioned/orders.py") is True
    assert mixed.versioned("dags/plain/orders.py") is False


HEADER = """from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
"""
BASE = HEADER + (
    'with DAG("orders", start_date=datetime(2024, 1, 1), schedule="@daily", catchup=False):\n'
    '    load = EmptyOperator(task_id="load")\n'
    '    audit = EmptyOperator(task_id="audit")\n'
    "    load >> audit\n"
)
HEAD = HEADER + (
    'with DAG("orders", start_date=datetime(2024, 1, 1), schedule="@daily", catchup=False):\n'
    '    load = EmptyOperator(task_id="load")\n'
)


def _check(
    tmp_path: Path,
    base_extra: dict[str, str],
    head_extra: dict[str, str],
    config: str = "",
    python: str | None = None,
    histories: tuple[str, ...] = (),
) -> Report:
    repo = make_repo(
        tmp_path / "repo", {"dags/orders.py": BASE, **base_extra}, {"dags/orders.py": HEAD, **head_extra}
    )
    path = tmp_path / "inflight-guard.yml"
    path.write_text(config or "version: 1\n")
    return run_check(
        CheckOptions(
            repo=Path(repo.working_dir),
            base="main",
            config=path,
            replay=ReplayOptions(python=python, cache=None, sources=histories),
        )
    )


def _rules(report: Report) -> set[str]:
    return {f.rule for f in report.findings if not f.suppressed}


STATIC = "version: 1\nairflow: {load: false}\n"


def test_git_bundle_in_airflow_cfg_pins_running_runs(tmp_path: Path, python: str) -> None:
    cfg = {"airflow.cfg": CFGS["git"]}
    report = _check(tmp_path, cfg, cfg, python=python)
    assert "AFL117" in _rules(report) and "AFL101" not in _rules(report)
    assert report.verdict.level.value == "safe"


def test_unversioned_or_disabled_cfg_pins_nothing(tmp_path: Path) -> None:
    for i, name in enumerate(("local", "git_disabled", "nothing")):
        cfg = {"airflow.cfg": CFGS[name]}
        report = _check(tmp_path / str(i), cfg, cfg, STATIC)
        assert "AFL101" in _rules(report), name


def test_head_dropping_the_git_bundle_unpins(tmp_path: Path) -> None:
    report = _check(tmp_path, {"airflow.cfg": CFGS["git"]}, {"airflow.cfg": CFGS["local"]}, STATIC)
    assert "AFL101" in _rules(report)


def test_config_file_key_moves_the_file_and_tool_config_wins(tmp_path: Path) -> None:
    cfg = {"deploy/airflow.cfg": CFGS["git"]}
    moved = "version: 1\nairflow: {load: false, config_file: deploy/airflow.cfg}\n"
    assert "AFL117" in _rules(_check(tmp_path / "a", cfg, cfg, moved))
    assert "AFL101" in _rules(_check(tmp_path / "b", cfg, cfg, STATIC))  # not at the default path
    local = "version: 1\nairflow: {load: false, config_file: deploy/airflow.cfg, bundle: local}\n"
    assert "AFL101" in _rules(_check(tmp_path / "c", cfg, cfg, local))


def test_static_mode_honours_bundle_git_without_a_version(tmp_path: Path) -> None:
    report = _check(tmp_path, {}, {}, "version: 1\nairflow: {load: false, bundle: git}\n")
    assert "AFL117" in _rules(report) and "AFL101" not in _rules(report)
    majors = {f.change.details["airflow_major"] for f in report.findings if f.rule == "AFL117" and f.change}
    assert majors == {3}  # the newest Airflow's rules when nothing says which


def test_airflow2_version_ignores_a_git_bundle(tmp_path: Path) -> None:
    config = "version: 1\nairflow: {load: false, bundle: git, version: '2.11.2'}\n"
    assert "AFL101" in _rules(_check(tmp_path, {}, {}, config))


def _export(tmp_path: Path, bundle_version: str | None) -> str:
    run = {"dag_id": "orders", "dag_run_id": "r1", "state": "running", "bundle_version": bundle_version}
    ti = {"dag_id": "orders", "dag_run_id": "r1", "task_id": "load", "map_index": -1, "state": "success"}
    path = tmp_path / f"export-{bundle_version}.json"
    path.write_text(json.dumps({"dag_runs": [run], "task_instances": [ti]}))
    return str(path)


def test_exported_bundle_version_pins_the_dag(tmp_path: Path) -> None:
    pinned = _check(tmp_path / "a", {}, {}, STATIC, histories=(_export(tmp_path, "4f2a9c1"),))
    assert "AFL117" in _rules(pinned) and "AFL101" not in _rules(pinned)
    unpinned = _check(tmp_path / "b", {}, {}, STATIC, histories=(_export(tmp_path, None),))
    assert "AFL101" in _rules(unpinned)
    # an export without a version beats an airflow.cfg that says git: it is what the deployment did
    cfg = {"airflow.cfg": CFGS["git"]}
    beaten = _check(tmp_path / "c", cfg, cfg, STATIC, histories=(_export(tmp_path, None),))
    assert "AFL101" in _rules(beaten)


@pytest.mark.parametrize("name", ["bad_json", "bad_bool"])
def test_unreadable_cfg_is_a_finding_at_its_line(tmp_path: Path, name: str) -> None:
    cfg = {"airflow.cfg": CFGS["git"]}
    report = _check(tmp_path, cfg, {"airflow.cfg": CFGS[name]}, STATIC)
    found = [f for f in report.findings if f.rule == "AFL004"]
    assert len(found) == 1 and found[0].location is not None
    line = CFGS[name].splitlines()[found[0].location.line - 1]
    assert line.startswith(("dag_bundle_config_list", "disable_bundle_versioning"))
    assert "AFL101" in _rules(report)  # nothing pinned by a file Airflow would refuse
