"""Outlines built, shown (proven) and withheld, per kind of change, over the fixture repositories.

    python scripts/outline_census.py [--synthesize off|always]

Each fixture under tests/fixtures/{temporal,cadence} becomes a two-commit repository in a temporary
folder and goes through `run_check`. With `--synthesize always` (needs the `temporal` CLI) every
shown outline has also replayed the histories synthesized from base; with `off` (the default) the
proof is compile + undefined names + the static verdict on the outlined head.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from gitrepo import make_repo  # noqa: E402

from bot.pipeline import CheckOptions, run_check  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthesize", choices=["off", "always"], default="off")
    args = parser.parse_args()
    rows: Counter[tuple[str, str]] = Counter()
    reasons: Counter[str] = Counter()
    for engine in ("temporal", "cadence"):
        for case in sorted((ROOT / "tests" / "fixtures" / engine).iterdir()):
            if not (case / "head").is_dir():
                continue
            with tempfile.TemporaryDirectory() as tmp:
                base = case / "base" if (case / "base").is_dir() else None
                repo = make_repo(Path(tmp) / "repo", base, case / "head")
                try:
                    report = run_check(
                        CheckOptions(repo=Path(repo.working_dir), base="main", synthesize=args.synthesize)
                    )
                except Exception as exc:  # a fixture that is an error case on purpose
                    print(f"{engine}/{case.name}: {type(exc).__name__}", file=sys.stderr)
                    continue
            plan = report.plan
            if not (plan.outline or plan.outline_withheld):
                continue
            kinds = sorted(
                {
                    f.change.kind.split(".", 1)[1]
                    for f in report.findings
                    if f.change and f.definition in plan.definitions and ".replay." not in f.change.kind
                }
            )
            kind = f"{engine}: {kinds[0] if kinds else '?'}"
            rows[(kind, "shown" if plan.outline else "withheld")] += 1
            if plan.outline_withheld:
                reasons[plan.outline_withheld.split(": ", 1)[-1].split(". Instead")[0][:90]] += 1
    kinds = sorted({k for k, _ in rows})
    print(f"{'kind of change':45} built shown withheld")
    for k in kinds:
        shown, withheld = rows[(k, "shown")], rows[(k, "withheld")]
        print(f"{k:45} {shown + withheld:5} {shown:5} {withheld:8}")
    total_shown = sum(v for (k, s), v in rows.items() if s == "shown")
    total_withheld = sum(v for (k, s), v in rows.items() if s == "withheld")
    print(f"{'total':45} {total_shown + total_withheld:5} {total_shown:5} {total_withheld:8}")
    for reason, n in reasons.most_common():
        print(f"  withheld x{n}: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
