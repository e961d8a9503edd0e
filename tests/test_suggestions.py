"""The versioning outline as one review of ```suggestion comments, end to end: a real git repo, the
PR's diff as git computes it (what GitHub's pulls/list-files shows), `inflight-guard action` as a
subprocess against the fake GitHub that checks each review comment lies on lines of that diff.

What a suggestion does is proven the way a maintainer would see it: the suggestions applied to the
head files as GitHub applies them (lines start..line replaced by the block) give exactly the files
`git apply` makes from the comment's outline."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from action_support import NUMBER, REPO, action, ours, pr_event
from github_fake import FakeGitHub, running_fake

from bot.demo import BRANCH, build_repo
from bot.github.suggestions import REVIEW_MARKER, SUPERSEDED, plan_review

SUGGESTION = re.compile(r"^(`{3,})suggestion\n(.*?)^\1$", re.S | re.M)


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with running_fake() as server:
        yield server


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, str, str]:
    path = build_repo(tmp_path / "repo")
    return path, git(path, "rev-parse", "main").strip(), git(path, "rev-parse", BRANCH).strip()


def pr_files(repo: Path, base: str, head: str) -> list[dict[str, Any]]:
    """The PR's files as GitHub lists them: the three-dot diff, each file's patch from its first @@."""
    files = []
    for name in git(repo, "diff", "--name-only", f"{base}...{head}").split():
        text = git(repo, "diff", "--no-color", f"{base}...{head}", "--", name)
        patch = text[text.index("\n@@") + 1 :].rstrip("\n")
        plus = sum(1 for ln in patch.splitlines() if ln.startswith("+"))
        minus = sum(1 for ln in patch.splitlines() if ln.startswith("-"))
        files.append({"filename": name, "patch": patch, "additions": plus, "deletions": minus})
    return files


def apply_suggestions(repo: Path, head: str, comments: list[dict[str, Any]]) -> dict[str, str]:
    """Head files with each suggestion applied as GitHub's "Commit suggestion" does."""
    out: dict[str, list[str]] = {}
    for c in sorted(comments, key=lambda c: (c["path"], -c["line"])):
        lines = out.setdefault(c["path"], git(repo, "show", f"{head}:{c['path']}").splitlines())
        [(_, block)] = SUGGESTION.findall(c["body"])
        start = c["start_line"] or c["line"]
        lines[start - 1 : c["line"]] = block.splitlines()
    return {path: "\n".join(lines) + "\n" for path, lines in out.items()}


def apply_outline(repo: Path, head: str, outline: str, tmp: Path) -> dict[str, str]:
    """Head files with the comment's outline applied by `git apply`."""
    work = tmp / "applied"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(work), head], cwd=repo, check=True, capture_output=True
    )
    (tmp / "outline.diff").write_text(outline)
    subprocess.run(["git", "apply", str(tmp / "outline.diff")], cwd=work, check=True)
    names = re.findall(r"^\+\+\+ b/(.+)$", outline, re.M)
    return {name: (work / name).read_text() for name in names}


def report_of(run_outputs: dict[str, str]) -> dict[str, Any]:
    return json.loads(Path(run_outputs["report"]).read_text())


def test_outline_becomes_one_review_whose_suggestions_apply_like_the_outline(
    fake: FakeGitHub, demo: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, base, head = demo
    fake.add_repo(REPO)
    fake.add_pull(REPO, NUMBER, head_sha=head, base_sha=base, files=pr_files(repo, base, head))
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo)
    assert run.code == 1, run.stderr
    outline = report_of(run.outputs)["plan"]["outline"]
    assert outline
    assert len(fake.reviews(REPO, NUMBER)) == 1, (run.stderr, fake.violations)
    [review] = fake.reviews(REPO, NUMBER)
    assert review["body"].startswith(REVIEW_MARKER + "\n")
    assert review["commit_id"] == head and review["state"] == "COMMENTED"
    assert review["comments"], review
    assert "0 hunk(s) only in the comment" in run.stderr
    assert apply_suggestions(repo, head, review["comments"]) == apply_outline(repo, head, outline, tmp_path)
    [comment] = ours(fake)  # the comment keeps the whole diff
    assert 'if workflow.patched("order-workflow-check-fraud")' in comment["body"]
    assert fake.violations == []

    # The same head again: the review stands as it is (no second one, nothing deleted).
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head, name="synchronize"), repo)
    assert "suggestion review unchanged" in run.stderr
    assert [r["id"] for r in fake.reviews(REPO, NUMBER)] == [review["id"]]
    assert fake.violations == []


def test_a_push_replaces_the_review(fake: FakeGitHub, demo: tuple[Path, str, str], tmp_path: Path) -> None:
    repo, base, head = demo
    fake.add_repo(REPO)
    fake.add_pull(REPO, NUMBER, head_sha=head, base_sha=base, files=pr_files(repo, base, head))
    action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo)
    [first] = fake.reviews(REPO, NUMBER)

    # A push that moves the workflow's lines down: the suggestions must follow them.
    path = repo / "orders" / "workflows.py"
    git(repo, "checkout", "--quiet", BRANCH)
    path.write_text('"""Orders."""\n\n' + path.read_text())
    git(repo, "commit", "--quiet", "-am", "docstring")
    pushed = git(repo, "rev-parse", "HEAD").strip()
    fake.add_pull(REPO, NUMBER, head_sha=pushed, base_sha=base, files=pr_files(repo, base, pushed))
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, pushed, name="synchronize"), repo)
    assert run.code == 1, run.stderr
    old, new = fake.reviews(REPO, NUMBER)
    assert old["id"] == first["id"] and old["comments"] == []
    assert old["body"] == f"{REVIEW_MARKER}\n{SUPERSEDED}\n"
    assert new["commit_id"] == pushed and new["comments"]
    assert [c["line"] for c in new["comments"]] == [c["line"] + 2 for c in first["comments"]]
    outline = report_of(run.outputs)["plan"]["outline"]
    assert apply_suggestions(repo, pushed, new["comments"]) == apply_outline(repo, pushed, outline, tmp_path)
    assert fake.violations == []


def test_hunks_github_shows_no_diff_for_stay_in_the_comment(
    fake: FakeGitHub, demo: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, base, head = demo
    fake.add_repo(REPO)
    # GitHub leaves `patch` out for a diff too large to show: no line of it can take a comment.
    files = [{**f, "patch": None} for f in pr_files(repo, base, head)]
    fake.add_pull(REPO, NUMBER, head_sha=head, base_sha=base, files=files)
    run = action(tmp_path, fake, "pull_request", pr_event(tmp_path, base, head), repo)
    assert run.code == 1, run.stderr
    assert fake.reviews(REPO, NUMBER) == []
    assert "no suggestion to post" in run.stderr
    [comment] = ours(fake)
    assert 'if workflow.patched("order-workflow-check-fraud")' in comment["body"]
    assert fake.violations == []


def test_outline_lines_outside_the_pr_diff_fall_back(demo: tuple[Path, str, str]) -> None:
    """A hunk on lines the PR's diff does not show, or in a new file, is not a suggestion."""
    repo, base, head = demo
    patches = {f["filename"]: f["patch"] for f in pr_files(repo, base, head)}
    [name] = patches
    lines = git(repo, "show", f"{head}:{name}").splitlines()
    shown = [int(n) for n in re.findall(r"^@@ -\S+ \+(\d+)", patches[name], re.M)]
    assert shown and shown[0] > 2, "the demo's diff must leave line 1 out"
    outline = (
        f"--- a/{name}\n+++ b/{name}\n@@ -1,1 +1,1 @@\n-{lines[0]}\n+# edited\n"
        "--- /dev/null\n+++ b/orders/v2.py\n@@ -0,0 +1 @@\n+x = 1\n"
    )
    suggestions, fallbacks = plan_review(outline, patches)
    assert suggestions == []
    assert [(f.path, f.why.split(" (")[0]) for f in fallbacks] == [
        (name, "lines 1-1 are not in one hunk of this PR's diff"),
        ("orders/v2.py", "a new file"),
    ]


CASES = {
    "insertion at the top (anchored on the line below)": ("a\nb\nc\n", "new\na\nb\nc\n"),
    "insertion in the middle": ("a\nb\nc\nd\n", "a\nb\nx\ny\nc\nd\n"),
    "deletion (an empty suggestion)": ("a\nb\nc\nd\n", "a\nd\n"),
    "replacement holding a code fence": ("a\nb\nc\n", "a\n````\n```suggestion\nc\n"),
    "body lines that look like file headers": ("x\n-- a\ny\n", "x\n++ b\ny\n"),
    "two hunks far apart": (
        "".join(f"l{i}\n" for i in range(30)),
        "l0\nX\n" + "".join(f"l{i}\n" for i in range(2, 29)) + "Y\n",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_suggestions_applied_as_github_does_give_the_outlined_file(case: str, tmp_path: Path) -> None:
    """The PR adds the file (GitHub's patch shows every line); the outline is `git diff` of an edit."""
    head_text, outlined = CASES[case]
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "w.py").write_text(head_text)
    git(repo, "add", "w.py")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qm", "head")
    head = git(repo, "rev-parse", "HEAD").strip()
    (repo / "w.py").write_text(outlined)
    outline = git(repo, "diff", "--no-color")
    git(repo, "checkout", "-q", "w.py")
    count = len(head_text.splitlines())
    added = "".join(f"+{line}\n" for line in head_text.splitlines())
    suggestions, fallbacks = plan_review(outline, {"w.py": f"@@ -0,0 +1,{count} @@\n{added}"})
    assert fallbacks == []
    comments = [{**s.comment(), "start_line": s.start if s.start != s.end else None} for s in suggestions]
    assert apply_suggestions(repo, head, comments) == {"w.py": outlined}
