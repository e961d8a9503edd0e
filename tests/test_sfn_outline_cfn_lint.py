"""Every Step Functions outline that edits a CloudFormation / SAM template, applied, passes `cfn-lint`
(the AWS CloudFormation linter, pinned in the test extras) as well as the template it patched:
the outline adds no error or warning the user's template did not already have.

One `cfn-lint` run over every case (it loads the resource specifications once).
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

from conftest import FIXTURES
from fixture_harness import expected, run_case

CASES = sorted(p for p in (FIXTURES / "stepfunctions").iterdir() if p.is_dir())


def _templates(root: Path) -> list[Path]:
    return [
        p
        for p in sorted(root.rglob("*"))
        if p.suffix in (".yaml", ".yml", ".json", ".template")
        and ".git" not in p.parts
        and ("AWS::" in p.read_text(errors="replace"))
    ]


def test_applied_outlines_add_no_cfn_lint_finding(tmp_path: Path) -> None:
    linted: dict[str, tuple[list[Path], list[Path]]] = {}
    for case in CASES:
        repo, report = run_case(case, tmp_path / case.name, expected(case))
        root = Path(repo.working_dir)
        edited = sorted({line[6:] for line in report.plan.outline.splitlines() if line.startswith("+++ b/")})
        if not [p for p in edited if "AWS::" in (root / p).read_text()]:
            continue
        head = tmp_path / "lint" / case.name / "head"
        shutil.copytree(root, head, ignore=shutil.ignore_patterns(".git"))
        patch = tmp_path / f"{case.name}.patch"
        patch.write_text(report.plan.outline)
        repo.git.apply(str(patch))
        applied = tmp_path / "lint" / case.name / "applied"
        shutil.copytree(root, applied, ignore=shutil.ignore_patterns(".git"))
        linted[case.name] = ([head / p for p in edited], [applied / p for p in edited])
    assert len(linted) >= 5, sorted(linted)
    files = [p for pair in linted.values() for side in pair for p in side]
    cli = shutil.which("cfn-lint")
    assert cli, "cfn-lint is a test dependency (pyproject: test extras)"
    done = subprocess.run(
        [cli, "--format", "parseable", *map(str, files)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode in (0, 2, 4, 6, 8, 10, 12, 14), done.stderr  # bit flags: errors/warnings/info
    found: dict[str, Counter[str]] = {}
    for line in done.stdout.splitlines():
        path, _, rest = line.partition(":")
        rule = rest.split(":")[4] if rest.count(":") >= 4 else rest
        found.setdefault(path, Counter())[rule] += 1
    for name, (before, after) in linted.items():
        for old, new in zip(before, after, strict=True):
            added = found.get(str(new), Counter()) - found.get(str(old), Counter())
            assert not added, f"{name}: the outline adds {dict(added)} to {new.name}:\n{done.stdout}"
