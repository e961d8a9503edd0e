"""Benchmark: what hostile input costs the check, beside a benign change of the same repository.

Each probe is a pull request a hostile author could open. For every one the script builds a git
repository in a temp dir, runs `inflight-guard check` as a fresh process (with an address-space
cap, so a regression fails instead of eating the machine), and prints the exit code, the wall time,
the peak RSS of the process, and the ratio of both to the benign baseline measured in the same run.

    python bench/hostile_input.py              # every probe, then a GitHub that never answers
    python bench/hostile_input.py --only bomb  # probes whose name contains "bomb"

The last line times `inflight-guard action` against the tests' fake GitHub in its silent mode
(accepts connections, never answers), with the default publishing deadline.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from gitrepo import make_repo  # noqa: E402
from sources import BASE, BREAKING  # noqa: E402

CAP = 4 << 30  # bytes of address space the check may map


def laughs(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


ASL = "StartAt: A\nStates:\n  A:\n    Type: Pass\n    End: true\n"


def renamed(files: dict[str, str], path: str) -> dict[str, str]:
    return {path if p == "app/workflows.py" else p: text for p, text in files.items()}


def many(value: int) -> dict[str, str]:
    return {f"data/part_{i % 40:02d}/settings_{i:05d}.py": f"VALUE = {value}\n" for i in range(10_000)}


def deep(files: dict[str, str]) -> dict[str, str]:
    line = "        depth = " + "+".join(["1"] * 5_000) + "\n"
    text = files["app/workflows.py"].replace('        return "done"\n', line + '        return "done"\n')
    return {**files, "app/workflows.py": text}


def huge_history(tmp: Path) -> list[str]:
    folder = tmp / "histories"
    folder.mkdir()
    with (folder / "huge.json").open("wb") as f:  # sparse: 500 MB that take no disk
        f.truncate(500 * 1024 * 1024)
    return ["--histories", str(folder)]


Probe = tuple[dict[str, str], dict[str, str], Callable[[Path], list[str]] | None]
PROBES: dict[str, Probe] = {
    "baseline: an inserted activity": (BASE, BREAKING, None),
    "alias bomb in an .asl.yaml": (BASE, {**BREAKING, "flows/bomb.asl.yaml": laughs() + ASL}, None),
    "alias bomb in the base config": ({**BASE, ".github/inflight-guard.yml": laughs()}, BREAKING, None),
    "5,000-deep expression": (BASE, deep(BREAKING), None),
    "workflow file named with a newline": (
        renamed(BASE, "app/work\nflows.py"),
        renamed(BREAKING, "app/work\nflows.py"),
        None,
    ),
    "10,000 changed files": ({**BASE, **many(1)}, {**BREAKING, **many(2)}, None),
    "500 MB history": (BASE, BREAKING, huge_history),
}


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def run(name: str, probe: Probe, tmp: Path) -> tuple[int, float, float, str]:
    base, head, extra = probe
    repo = make_repo(tmp / "repo", base, head)
    args = extra(tmp) if extra else []
    started = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "check",
            "--repo",
            repo.working_dir,
            "--base",
            "main",
            "--format",
            "json",
            *args,
        ],
        capture_output=True,
        text=True,
        preexec_fn=_cap,
        timeout=900,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wall = time.perf_counter() - started
    # The largest child so far (the check; git's processes are far smaller): each probe is measured
    # in an interpreter of its own (main), so no earlier probe's peak shows here.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    last = (out.stderr.strip().splitlines() or [""])[-1]
    return out.returncode, wall, peak / 1024, last[:110]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="run the probes whose name contains this")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one probe in this process
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            code, wall, mb, last = run(args.one, PROBES[args.one], Path(tmp))
        print(f"{code}\t{wall:.2f}\t{mb:.0f}\t{last}")
        return
    rows = []
    for name in PROBES:
        if args.only not in name and not name.startswith("baseline"):
            continue
        out = subprocess.run(
            [sys.executable, __file__, "--one", name], capture_output=True, text=True, check=True
        ).stdout.strip()
        code, wall, mb, last = out.split("\t", 3)
        rows.append((name, int(code), float(wall), float(mb), last))
    base_wall, base_mb = rows[0][2], rows[0][3]
    silent = silent_github() if not args.only else None
    print(f"{'probe':38} {'exit':>4} {'wall s':>7} {'x base':>6} {'peak MB':>8} {'x base':>6}  last line")
    for name, code, wall, mb, last in rows:
        print(
            f"{name:38} {code:>4} {wall:>7.2f} {wall / base_wall:>6.1f} {mb:>8.0f} {mb / base_mb:>6.1f}  {last}"
        )
    if silent is not None:
        code, wall, last = silent
        print(
            f"{'GitHub never answers (action)':38} {code:>4} {wall:>7.2f} {wall / base_wall:>6.1f}  {'':>15}  {last}"
        )


def silent_github() -> tuple[int, float, str]:
    """`inflight-guard action` on a breaking PR while GitHub accepts connections and never answers."""
    from action_support import action, pr_event, setup_pr
    from github_fake import running_fake

    with tempfile.TemporaryDirectory() as folder, running_fake() as fake:
        tmp = Path(folder)
        repo = make_repo(tmp / "repo", BASE, BREAKING)
        base, head = repo.commit("main").hexsha, repo.head.commit.hexsha
        setup_pr(fake, base, head)
        fake.hang.set()
        started = time.perf_counter()
        run = action(
            tmp, fake, "pull_request", pr_event(tmp, base, head), Path(repo.working_dir), timeout=600
        )
        wall = time.perf_counter() - started
        fake.hang.clear()
    return run.code, wall, (run.stderr.strip().splitlines() or [""])[-1][:110]


if __name__ == "__main__":
    main()
