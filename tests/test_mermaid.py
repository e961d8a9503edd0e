"""The comment's diagrams, read back by Mermaid's own parser (npm `mermaid`, headless under jsdom).

Each check runs the whole pipeline on a real git repository, renders the PR comment, takes its
```mermaid blocks and asks Mermaid what it read: exactly the nodes, edges, labels and classes the
picture holds. A name that broke out of its label would add a node, an edge or a parse error.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from airflow_env import AIRFLOW_3, airflow_python
from gitrepo import make_repo
from mermaid_env import install, parse

from bot.histories import ReplayOptions
from bot.model import Picture, PictureEdge, PictureNode
from bot.pipeline import CheckOptions, run_check
from bot.report.mermaid import MARK, flowchart, not_drawn, text
from bot.report.render import markdown

FIXTURES = Path(__file__).parent / "fixtures"
CONFIG = {".github/inflight-guard.yml": 'synthesis:\n  mode: "off"\n'}
HOSTILE = [
    'Charge"] --> Evil["x',
    "<img src=x onerror=alert(1)>",
    "```\n</details>",
    '%%{init: {"theme": "dark"}}%%',
    "end",
    "A|B;C#D&amp;E #quot; `tick`",
    "click n0 call alert()",
    "[[sub]] ((o)) {d} >flag]",
]
BLOCK = re.compile(r"^```mermaid\n(.*?)^```$", re.S | re.M)
ENTITY = re.compile(r"ﬂ°°(\d+)¶ß")


@pytest.fixture(scope="session")
def mermaid() -> Path:
    folder, seconds = install()
    if seconds:
        print(f"npm ci of mermaid + jsdom: {seconds:.1f} s")
    return folder


def _decoded(label: str) -> str:
    """A label as Mermaid draws it: the entity codes it kept as placeholders, decoded."""
    return ENTITY.sub(lambda m: chr(int(m.group(1))), label)


def _assert_read_back(picture: Picture, read: dict[str, Any]) -> None:
    """Mermaid read exactly `picture`: its nodes with their labels and marks, its edges, its lanes."""
    assert read["ok"], read.get("error")
    assert read["type"] == "flowchart-v2"
    ids = {n.id: f"n{i}" for i, n in enumerate(picture.nodes)}
    vertices = {v["id"]: v for v in read["vertices"]}
    capped = bool(picture.omitted or picture.omitted_edges)
    expected = set(ids.values()) | ({"more"} if capped else set())
    assert set(vertices) == expected
    for node in picture.nodes:
        vertex = vertices[ids[node.id]]
        assert _decoded(vertex["text"]) == " ".join((MARK[node.status] + node.label).split())
        assert (node.status in vertex["classes"]) == (node.status != "unchanged")
        assert ("gated" in vertex["classes"]) == node.gated
    if capped:
        assert _decoded(vertices["more"]["text"]) == not_drawn(picture)
    strokes = {"added": "thick", "removed": "dotted", "changed": "normal", "unchanged": "normal"}
    assert [(e["start"], e["end"], _decoded(e["text"]), e["stroke"]) for e in read["edges"]] == [
        (ids[e.source], ids[e.target], " ".join(e.label.split()), strokes[e.status]) for e in picture.edges
    ]
    lanes = list(dict.fromkeys(n.lane for n in picture.nodes if n.lane))
    assert [_decoded(s["title"]) for s in read["subgraphs"]] == lanes
    for sub, lane in zip(read["subgraphs"], lanes, strict=True):
        assert sorted(sub["nodes"]) == sorted(ids[n.id] for n in picture.nodes if n.lane == lane)


def _drawn(report: Any, mermaid: Path) -> list[Picture]:
    """The pictures of `report`, after checking the comment draws each and Mermaid reads it back."""
    comment = markdown(report)
    blocks = BLOCK.findall(comment)
    assert blocks == [flowchart(p) for p in report.pictures]
    for picture, read in zip(report.pictures, parse(mermaid, blocks), strict=True):
        _assert_read_back(picture, read)
    # The section is collapsed and closes: no name opened or closed markup of its own.
    section = comment[comment.index("<summary><b>Pictures</b>") :]
    assert section.count("</details>") == 1 and "<img" not in section
    return list(report.pictures)


def _by_label(picture: Picture) -> dict[str, PictureNode]:
    return {n.label: n for n in picture.nodes}


def _asl(states: dict[str, Any], start: str) -> str:
    return json.dumps({"StartAt": start, "States": states}, indent=2)


def test_a_state_machine_is_drawn_with_hostile_state_names_kept_inside_their_labels(
    tmp_path: Path, mermaid: Path
) -> None:
    evil, html, fence = HOSTILE[0], HOSTILE[1], HOSTILE[2].replace("\n", " ")
    base = {
        "Start": {"Type": "Pass", "Next": evil},
        evil: {"Type": "Wait", "Seconds": 5, "Next": "Old"},
        "Old": {"Type": "Pass", "Next": "Fan"},
        "Fan": {
            "Type": "Parallel",
            "Branches": [{"StartAt": fence, "States": {fence: {"Type": "Pass", "End": True}}}],
            "Next": "Gone",
        },
        "Gone": {"Type": "Pass", "Next": "Done"},
        "Done": {"Type": "Succeed"},
    }
    head = {
        "Start": {"Type": "Pass", "Next": evil},
        evil: {"Type": "Wait", "Seconds": 9, "Next": html},
        html: {"Type": "Pass", "Next": "Fan"},
        "Fan": {
            "Type": "Parallel",
            "Branches": [{"StartAt": fence, "States": {fence: {"Type": "Pass", "End": True}}}],
            "Next": HOSTILE[3],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done"}],
        },
        HOSTILE[3]: {"Type": "Pass", "Result": {"new": True}, "Next": "Done"},
        "Done": {"Type": "Succeed"},
    }
    repo = make_repo(
        tmp_path / "repo",
        {**CONFIG, "flows/order.asl.json": _asl(base, "Start")},
        {**CONFIG, "flows/order.asl.json": _asl(head, "Start")},
    )
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main"))
    [picture] = _drawn(report, mermaid)
    assert (picture.engine, picture.definition, picture.kind) == ("stepfunctions", "order", "graph")
    nodes = _by_label(picture)
    assert nodes[f"{evil} · Wait"].status == "changed"  # Seconds 5 → 9
    assert nodes[f"{html} · Pass (was Old)"].status == "changed"  # same body, new name
    assert nodes[f"{HOSTILE[3]} · Pass"].status == "added"
    assert nodes["Gone · Pass"].status == "removed"
    assert nodes["Start · Pass"].status == nodes["Done · Succeed"].status == "unchanged"
    edges = {(e.source, e.target, e.label): e.status for e in picture.edges}
    assert edges[("Fan", "Done", "Catch")] == "added"
    assert edges[("Fan", "Gone", "")] == "removed"
    assert edges[("Fan", HOSTILE[3], "")] == "added"
    assert edges[("Fan", fence, "branch")] == "unchanged"
    assert edges[(evil, html, "")] == "unchanged"  # the rename carries its edges over


def test_a_large_state_machine_is_capped_around_what_changed(tmp_path: Path, mermaid: Path) -> None:
    def chain(wait: int) -> str:
        states: dict[str, Any] = {f"S{i}": {"Type": "Pass", "Next": f"S{i + 1}"} for i in range(70)}
        states["S35"] = {"Type": "Wait", "Seconds": wait, "Next": "S36"}
        states["S70"] = {"Type": "Succeed"}
        return _asl(states, "S0")

    repo = make_repo(
        tmp_path / "repo", {**CONFIG, "big.asl.json": chain(5)}, {**CONFIG, "big.asl.json": chain(6)}
    )
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main"))
    [picture] = _drawn(report, mermaid)
    assert len(picture.nodes) == 40 and picture.omitted == 71 - 40
    drawn = {n.id for n in picture.nodes}
    assert {"S34", "S35", "S36"} <= drawn  # the change and its neighbours come first
    assert _by_label(picture)["S35 · Wait"].status == "changed"
    assert "31 more not drawn" in markdown(report)


def test_a_dense_state_machine_draws_its_changed_edges_first_and_counts_the_rest(
    tmp_path: Path, mermaid: Path
) -> None:
    def dense(extra: bool) -> str:
        names = [f"C{i}" for i in range(30)]
        states: dict[str, Any] = {}
        for i, name in enumerate(names):
            targets = [t for t in names if t != name] + (["Extra"] if extra and i == 0 else [])
            rules = [{"Variable": "$.x", "NumericEquals": k, "Next": t} for k, t in enumerate(targets)]
            states[name] = {"Type": "Choice", "Choices": rules, "Default": "Done"}
        states["Done"] = {"Type": "Succeed"}
        if extra:
            states["Extra"] = {"Type": "Fail", "Error": "E"}
        return _asl(states, "C0")

    repo = make_repo(
        tmp_path / "repo", {**CONFIG, "d.asl.json": dense(False)}, {**CONFIG, "d.asl.json": dense(True)}
    )
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main"))
    [picture] = _drawn(report, mermaid)
    total = 30 * 29 + 30 + 1  # every Choices rule, every Default, the new rule
    assert len(picture.nodes) == 32 and picture.omitted == 0
    assert len(picture.edges) == 120 and picture.omitted_edges == total - 120
    assert ("C0", "Extra", "Choices") in {(e.source, e.target, e.label) for e in picture.edges}
    assert f"{total - 120} more edges not drawn" in markdown(report)


def test_a_temporal_workflow_is_drawn_as_base_and_head_sequences_with_the_gate(
    tmp_path: Path, mermaid: Path
) -> None:
    fixture = FIXTURES / "temporal" / "activity_inserted_gated_patched"
    base = {str(p.relative_to(fixture / "base")): p.read_text() for p in (fixture / "base").rglob("*.py")}
    head = {str(p.relative_to(fixture / "head")): p.read_text() for p in (fixture / "head").rglob("*.py")}
    # A hostile activity name, called by string in both trees.
    call = "        await workflow.execute_activity({!r}, order_id, start_to_close_timeout=T)\n"
    for tree in (base, head):
        tree["app/workflows.py"] = tree["app/workflows.py"].replace(
            "        return await", call.format(HOSTILE[5] + HOSTILE[6]) + "        return await"
        )
    repo = make_repo(tmp_path / "repo", {**CONFIG, **base}, {**CONFIG, **head})
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main"))
    [picture] = _drawn(report, mermaid)
    assert (picture.engine, picture.definition, picture.kind) == ("temporal", "OrderWorkflow", "sequence")
    lanes: dict[str, list[tuple[str, str, bool]]] = {}
    for n in picture.nodes:
        lanes.setdefault(n.lane, []).append((n.label, n.status, n.gated))
    assert lanes["base · run"] == [
        ("activity reserve", "unchanged", False),
        ("activity charge", "unchanged", False),
        (" ".join(f"activity {HOSTILE[5] + HOSTILE[6]}".split()), "unchanged", False),
        ("activity ship", "unchanged", False),
    ]
    assert lanes["head · run"] == [
        ("activity reserve", "unchanged", False),
        ("gate patch order-fraud-check", "added", True),
        ("activity fraud_check · gate order-fraud-check (new)", "added", True),
        ("activity charge", "unchanged", False),
        (" ".join(f"activity {HOSTILE[5] + HOSTILE[6]}".split()), "unchanged", False),
        ("activity ship", "unchanged", False),
    ]


def test_an_airflow_dag_loaded_by_airflow_is_drawn_with_its_task_changes(
    tmp_path: Path, mermaid: Path
) -> None:
    dag = """from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("orders", start_date=datetime(2024, 1, 1), schedule="@daily", catchup=False):
{tasks}
"""
    base = "    a = EmptyOperator(task_id='extract')\n    b = EmptyOperator(task_id='clean')\n"
    base += "    c = EmptyOperator(task_id='load')\n    a >> b >> c\n"
    head = "    a = EmptyOperator(task_id='extract')\n    v = BashOperator(task_id='validate', bash_command='true')\n"
    head += "    c = EmptyOperator(task_id='load', trigger_rule='all_done')\n    a >> v >> c\n    a >> c\n"
    python = airflow_python(AIRFLOW_3)
    repo = make_repo(
        tmp_path / "repo",
        {**CONFIG, "dags/orders.py": dag.format(tasks=base)},
        {**CONFIG, "dags/orders.py": dag.format(tasks=head)},
    )
    report = run_check(
        CheckOptions(
            repo=Path(repo.working_dir), base="main", replay=ReplayOptions(python=python, cache=None)
        )
    )
    [picture] = _drawn(report, mermaid)
    assert (picture.engine, picture.definition, picture.kind) == ("airflow", "orders", "graph")
    status = {n.id: n.status for n in picture.nodes}
    assert status == {"extract": "unchanged", "validate": "added", "load": "changed", "clean": "removed"}
    edges = {(e.source, e.target): e.status for e in picture.edges}
    assert edges == {
        ("extract", "validate"): "added",
        ("extract", "load"): "added",
        ("validate", "load"): "added",
        ("extract", "clean"): "removed",
        ("clean", "load"): "removed",
    }


def test_the_parser_sees_an_injection_that_escaping_prevents(mermaid: Path) -> None:
    """The read-back is a real check: a raw label adds a node (or fails to parse); escaped, every
    printable character and each hostile name comes back as written, in one node."""
    raw = 'flowchart TD\n  n0["Charge"] --> Evil["x"]\n'
    nodes = [PictureNode(id=str(i), label=label) for i, label in enumerate(HOSTILE)]
    nodes.append(PictureNode(id="ascii", label="".join(chr(c) for c in range(33, 127))))
    nodes.append(PictureNode(id="wide", label="état → ✓ 𝄞 \u202e rtl"))
    picture = Picture(
        engine="stepfunctions",
        definition="x",
        kind="graph",
        nodes=nodes,
        edges=[PictureEdge(source="0", target="1", label=HOSTILE[2], status="added")],
    )
    read_raw, read_escaped = parse(mermaid, [raw, flowchart(picture)])
    assert read_raw["ok"] and {v["id"] for v in read_raw["vertices"]} == {"n0", "Evil"}
    _assert_read_back(picture, read_escaped)
    assert all(c.isalnum() or c in ' #;[]"|-_.,:/()=+~>\n' for c in flowchart(picture))
    assert text("a`b") == "a#96;b"


@pytest.mark.parametrize(
    "case",
    [
        "cadence/activity_inserted_gated",
        "cadence/workflow_removed",
        "cadence/signal_handler_removed",
        "temporal/activities_reordered",
        "stepfunctions/asl_json_startat_changed",
        "stepfunctions/asl_json_catch_removed",
    ],
)
def test_engine_fixtures_are_drawn_and_read_back(case: str, tmp_path: Path, mermaid: Path) -> None:
    """Fixture changes of every Python and ASL shape: added, removed and reordered commands, a
    removed workflow and handler, a new start state, a lost Catch."""
    fixture = FIXTURES / case

    def tree(side: str) -> dict[str, str]:
        root = fixture / side
        files = {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}
        return {**files, **CONFIG}

    repo = make_repo(tmp_path / "repo", tree("base"), tree("head"))
    report = run_check(CheckOptions(repo=Path(repo.working_dir), base="main"))
    pictures = _drawn(report, mermaid)
    changed = {d.id for d in report.definitions if d.status != "unchanged"}
    assert {p.definition for p in pictures} == changed and changed
    marked = [any(x.status != "unchanged" for x in [*p.nodes, *p.edges]) for p in pictures]
    assert all(marked), [p.definition for p, m in zip(pictures, marked, strict=True) if not m]


def test_the_golden_comment_s_diagrams_parse(mermaid: Path) -> None:
    golden = (Path(__file__).parent / "golden" / "demo.md").read_text()
    blocks = BLOCK.findall(golden)
    assert blocks
    for read in parse(mermaid, blocks):
        assert read["ok"], read.get("error")
        assert any("added" in v["classes"] for v in read["vertices"])
