"""Benchmark: what posting the outline as a suggestion review costs per run, in API calls and time.

Runs `publish_suggestions` in process against the fake GitHub (loopback HTTP, every request and
response validated against GitHub's OpenAPI description, as GitHub's own rules for review lines)
for a PR that adds a LINES-line file and an outline of HUNKS hunks, in three runs:

- first: no review yet (list reviews, the PR's files, create);
- same head again: the review stands (list reviews only);
- a push: the old review's comments deleted, its body superseded, a new review made.

Baseline, in the same run: editing the sticky comment once (what every run already pays).
Prints requests and seconds per run, and the ratio of seconds to the baseline; figures only.

    python bench/suggestion_review.py                   # 20 hunks in a 2,000-line file
    python bench/suggestion_review.py --hunks 50 --lines 10000
"""

from __future__ import annotations

import argparse
import difflib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from github_fake import running_fake  # noqa: E402

from bot.github.client import make_client  # noqa: E402
from bot.github.suggestions import publish_suggestions  # noqa: E402

REPO, NUMBER = "octo/flows", 7


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hunks", type=int, default=20)
    parser.add_argument("--lines", type=int, default=2000)
    args = parser.parse_args()
    head = [f"    step_{i}()" for i in range(args.lines)]
    outlined = list(head)
    every = max(args.lines // args.hunks, 8)
    for at in range(every // 2, args.lines, every)[: args.hunks]:
        outlined[at] = f'    if workflow.patched("p{at}"):\n        step_{at}_v2()\n    else:\n    {head[at]}'
    outlined = "\n".join(outlined).splitlines()
    outline = "".join(
        difflib.unified_diff([f"{x}\n" for x in head], [f"{x}\n" for x in outlined], "a/w.py", "b/w.py")
    )
    patch = f"@@ -0,0 +1,{len(head)} @@\n" + "\n".join(f"+{x}" for x in head)
    with running_fake() as fake:
        fake.add_repo(REPO)
        fake.add_pull(
            REPO, NUMBER, head_sha="a" * 40, base_sha="b" * 40, files=[{"filename": "w.py", "patch": patch}]
        )
        gh = make_client("t", fake.url)
        repo = gh.get_repo(REPO, lazy=True)
        login = fake.bot_login
        rows = []
        comment = fake.add_comment(REPO, NUMBER, "<!-- inflight-guard:report -->\nold", login=login)
        fake.requests.clear()
        began = time.perf_counter()
        repo.get_issue(NUMBER).get_comment(comment).edit("<!-- inflight-guard:report -->\nnew")
        baseline = (len(fake.requests), time.perf_counter() - began)
        for name, sha in (("first", "a" * 40), ("same head again", "a" * 40), ("a push", "c" * 40)):
            fake.set_head(REPO, NUMBER, sha)
            fake.requests.clear()
            began = time.perf_counter()
            said = publish_suggestions(gh, repo, NUMBER, sha, outline, login)
            rows.append((name, len(fake.requests), time.perf_counter() - began, said))
        assert fake.violations == [], fake.violations
    print(f"outline of {args.hunks} hunks in a {args.lines:,}-line file (fake GitHub on loopback)")
    print(f"  {'baseline: one comment edit':32} {baseline[0]:3d} requests  {baseline[1]:6.3f} s")
    for name, count, seconds, said in rows:
        print(f"  {name:32} {count:3d} requests  {seconds:6.3f} s  x{seconds / baseline[1]:5.1f}  ({said})")


if __name__ == "__main__":
    main()
