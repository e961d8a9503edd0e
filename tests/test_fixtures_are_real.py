"""Every fixture is real Temporal code: the SDK itself imports it and accepts its definitions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import FIXTURES

# Runs in a fresh interpreter: imports each fixture side's modules with the real temporalio,
# checks every class the source decorates with @workflow.defn carries the SDK's definition.
IMPORTER = r"""
import importlib, json, sys, traceback
from pathlib import Path
from temporalio import workflow

def source_root(path):
    # The nearest folder above the file that is not a package: what would be on sys.path.
    folder = path.parent
    while (folder / "__init__.py").exists():
        folder = folder.parent
    return folder

problems, checked = [], 0
for side in json.loads(sys.argv[1]):
    groups = {}
    for path in sorted(Path(side).rglob("*.py")):
        groups.setdefault(source_root(path), []).append(path)
    for root, paths in groups.items():
        sys.path.insert(0, str(root))
        for path in paths:
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if not parts:
                continue
            try:
                module = importlib.import_module(".".join(parts))
            except Exception:
                problems.append(f"{path}: {traceback.format_exc(limit=1).strip().splitlines()[-1]}")
                continue
            if "@workflow.defn" in path.read_text(encoding="utf-8-sig"):
                found = [v for v in vars(module).values()
                         if isinstance(v, type) and workflow._Definition.from_class(v) is not None
                         and v.__module__ == module.__name__]
                if not found:
                    problems.append(f"{path}: no class accepted by @workflow.defn")
                checked += len(found)
        for key in [k for k, m in sys.modules.items() if str(root) in str(getattr(m, "__file__", "") or "")]:
            del sys.modules[key]
        sys.path.remove(str(root))
print(json.dumps({"problems": problems, "checked": checked}))
"""


def _sides() -> list[str]:
    sides = []
    for case in sorted((FIXTURES / "temporal").iterdir()):
        expected = yaml.safe_load((case / "expected.yaml").read_text())
        if expected.get("importable", True) is False:
            continue
        sides += [str(case / side) for side in ("base", "head") if (case / side).is_dir()]
    return sides


def test_every_fixture_imports_with_the_real_sdk() -> None:
    sides = _sides()
    out = subprocess.run(
        [sys.executable, "-c", IMPORTER, json.dumps(sides)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["problems"] == []
    assert result["checked"] >= len(sides) // 2  # nearly every side defines workflows


def test_demo_example_imports_with_the_real_sdk() -> None:
    example = Path(__file__).resolve().parent.parent / "bot" / "demo" / "example"
    out = subprocess.run(
        [sys.executable, "-c", IMPORTER, json.dumps([str(example / "base"), str(example / "head")])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"problems": [], "checked": 2}
