"""The versioning outline as one pull request review of ```suggestion comments.

Each hunk of the outline (a unified diff whose `a/` side is the head file) becomes a review
comment on the exact head lines it replaces (RIGHT side, `start_line`..`line`), holding the new
lines in a ```suggestion block: a maintainer applies it from the PR page. GitHub accepts a review
comment only on lines of the pull request's own diff (every lines of a multi-line one in the same
hunk of it): a hunk elsewhere, in a new file or in a deleted one, stays in the sticky comment's
diff, and the review says how many did.

The review is found again by its first line (a hidden marker) and our login, like the sticky
comment. A submitted review cannot be deleted through the REST API, and a comment-only review
cannot be dismissed: on each push the old review's comments are deleted and its body says it is
superseded; the new review is made on the new head.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from github import Github
from github.File import File
from github.PaginatedList import PaginatedList
from github.PullRequestComment import PullRequestComment
from github.PullRequestReview import PullRequestReview
from github.Repository import Repository

from bot.report.render import COMMENT_LIMIT, fence_for

REVIEW_MARKER = "<!-- inflight-guard:suggestions -->"
SUPERSEDED = "_Superseded: the versioning outline of a newer commit is in a newer review of inflight-guard._"
MAX_SUGGESTIONS = 50  # comments in one review: the rest stay in the sticky comment's diff
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class OutlineHunk:
    """One hunk of the outline: the head lines it covers and what replaces them."""

    path: str
    start: int  # first head line of the hunk (1-based); 0 for an insertion into an empty file
    lines: tuple[str, ...]  # the hunk body, each line with its ' ', '-' or '+' prefix
    new_file: bool = False
    deleted_file: bool = False


@dataclass(frozen=True)
class Suggestion:
    """A review comment: head lines `start`..`end` of `path` become `replacement`."""

    path: str
    start: int
    end: int
    replacement: tuple[str, ...]

    def comment(self) -> dict[str, Any]:
        """The entry of `comments` in POST /pulls/{n}/reviews for this suggestion."""
        body_text = "\n".join(self.replacement)
        fence = fence_for(body_text)
        body = (
            "inflight-guard versioning outline: **Commit suggestion** applies this hunk.\n\n"
            f"{fence}suggestion\n{body_text}{chr(10) if self.replacement else ''}{fence}\n"
        )
        entry: dict[str, Any] = {"path": self.path, "line": self.end, "side": "RIGHT", "body": body}
        if self.start != self.end:
            entry.update(start_line=self.start, start_side="RIGHT")
        return entry


@dataclass(frozen=True)
class Fallback:
    """A hunk that cannot be a suggestion, and why (it stays in the comment's diff)."""

    path: str
    why: str


def parse_outline(outline: str) -> list[OutlineHunk]:
    """Return the hunks of a unified diff, in order; text that is not a diff gives none.

    A hunk's body is as long as its header says (old and new line counts), so a body line that
    looks like a file header (`--- x` removed, `+++ y` added) is read as the body it is."""
    hunks: list[OutlineHunk] = []
    old_path = new_path = ""
    lines = outline.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old_path, new_path = _strip(line[4:], "a/"), _strip(lines[i + 1][4:], "b/")
            i += 2
            continue
        m = HUNK.match(line)
        if not m or not new_path:
            i += 1
            continue
        old_left = int(m.group(2)) if m.group(2) is not None else 1
        new_left = int(m.group(4)) if m.group(4) is not None else 1
        body: list[str] = []
        i += 1
        while i < len(lines) and (old_left > 0 or new_left > 0):
            text = lines[i] or " "  # a blank context line whose trailing space was lost
            kind = text[0]
            if kind == "\\":  # "\ No newline at end of file"
                i += 1
                continue
            if kind not in " -+":
                break  # a hunk shorter than its header: what was read is all there is
            old_left -= kind in " -"
            new_left -= kind in " +"
            body.append(text)
            i += 1
        hunks.append(
            OutlineHunk(
                path=new_path if new_path != "/dev/null" else old_path,
                start=int(m.group(1)),
                lines=tuple(body),
                new_file=old_path == "/dev/null",
                deleted_file=new_path == "/dev/null",
            )
        )
    return hunks


def _strip(name: str, prefix: str) -> str:
    name = name.split("\t", 1)[0].strip()
    return name if name == "/dev/null" else name.removeprefix(prefix)


def to_suggestion(hunk: OutlineHunk) -> Suggestion | Fallback:
    """The hunk as the smallest suggestion: context lines around the change left out, one kept
    as the anchor of a pure insertion."""
    if hunk.new_file:
        return Fallback(hunk.path, "a new file (a suggestion edits lines that exist)")
    if hunk.deleted_file:
        return Fallback(hunk.path, "a deleted file")
    body = list(hunk.lines)
    numbered: list[tuple[str, int | None]] = []  # (line, head line number or None for '+')
    at = hunk.start
    for line in body:
        if line[0] == "+":
            numbered.append((line, None))
        else:
            numbered.append((line, at))
            at += 1
    changed = [i for i, (line, _) in enumerate(numbered) if line[0] != " "]
    if not changed:
        return Fallback(hunk.path, "a hunk without a change")
    first, last = changed[0], changed[-1]
    if not any(numbered[i][0][0] == "-" for i in range(first, last + 1)):
        # A pure insertion: the suggestion replaces a neighbouring line by itself plus the new ones.
        if first > 0:
            first -= 1
        elif last + 1 < len(numbered):
            last += 1
        else:
            return Fallback(hunk.path, "an insertion with no line of the file to anchor it")
    span = numbered[first : last + 1]
    head_lines = [n for _, n in span if n is not None]
    replacement = tuple(line[1:] for line, _ in span if line[0] != "-")
    return Suggestion(hunk.path, head_lines[0], head_lines[-1], replacement)


def diff_hunks(patch: str) -> list[tuple[int, int]]:
    """The head-side (RIGHT) line ranges of each hunk of a file's patch, as GitHub shows it."""
    ranges = []
    for line in patch.splitlines():
        m = HUNK.match(line)
        if m:
            start, count = int(m.group(3)), int(m.group(4) if m.group(4) is not None else 1)
            if count:
                ranges.append((start, start + count - 1))
    return ranges


def plan_review(outline: str, patches: dict[str, str | None]) -> tuple[list[Suggestion], list[Fallback]]:
    """Split the outline into suggestions GitHub will take (every line in one hunk of the PR's
    diff, per `patches`: path -> patch, None when GitHub shows no patch) and the rest."""
    suggestions: list[Suggestion] = []
    fallbacks: list[Fallback] = []
    for hunk in parse_outline(outline):
        made = to_suggestion(hunk)
        if isinstance(made, Fallback):
            fallbacks.append(made)
            continue
        if made.path not in patches:
            fallbacks.append(Fallback(made.path, "a file this pull request does not change"))
            continue
        patch = patches[made.path]
        if patch is None:
            fallbacks.append(Fallback(made.path, "GitHub shows no diff for this file (too large or binary)"))
            continue
        if not any(lo <= made.start and made.end <= hi for lo, hi in diff_hunks(patch)):
            fallbacks.append(
                Fallback(made.path, f"lines {made.start}-{made.end} are not in one hunk of this PR's diff")
            )
            continue
        if len(made.comment()["body"]) > COMMENT_LIMIT:
            fallbacks.append(Fallback(made.path, "longer than a review comment may be"))
            continue
        if len(suggestions) >= MAX_SUGGESTIONS:
            fallbacks.append(Fallback(made.path, f"more than {MAX_SUGGESTIONS} hunks"))
            continue
        suggestions.append(made)
    return suggestions, fallbacks


def review_body(head_sha: str, suggestions: Sequence[Suggestion], fallbacks: Sequence[Fallback]) -> str:
    """The review's own text: the marker first, what it holds, and what stayed in the comment."""
    lines = [
        REVIEW_MARKER,
        f"**inflight-guard**: the versioning outline for `{head_sha[:12]}` as {len(suggestions)} "
        "suggestion(s); **Commit suggestion** on each applies it (the sticky comment says what it proves).",
    ]
    if fallbacks:
        lines += [
            "",
            f"{len(fallbacks)} hunk(s) cannot be suggestions here and are only in the comment's diff:",
            *(f"- `{f.path.replace('`', '')}`: {f.why}" for f in fallbacks[:20]),
        ]
    return "\n".join(lines) + "\n"


def outline_digest(outline: str) -> str:
    """A hidden line naming the outline a review was made from (a rerun on the same head and
    outline needs nothing else from GitHub to know its review stands)."""
    return f"<!-- outline sha256:{hashlib.sha256(outline.encode()).hexdigest()[:16]} -->"


# -- GitHub --------------------------------------------------------------------------------------


def pr_patches(gh: Github, repo: Repository, number: int) -> dict[str, str | None]:
    """GitHub's own diff of the pull request: path -> patch (None when it shows none)."""
    files = PaginatedList(File, gh.requester, f"{repo.url}/pulls/{number}/files", None)
    return {f.filename: f.patch for f in files}


def _reviews(gh: Github, repo: Repository, number: int) -> Iterator[PullRequestReview]:
    yield from PaginatedList(PullRequestReview, gh.requester, f"{repo.url}/pulls/{number}/reviews", None)


def ours(reviews: Sequence[PullRequestReview], login: str) -> list[PullRequestReview]:
    """Our suggestion reviews, oldest first: our login, the marker as the body's first line."""
    return [
        r
        for r in reviews
        if r.user is not None
        and r.user.login == login
        and (r.body or "").split("\n", 1)[0].strip() == REVIEW_MARKER
    ]


def publish_suggestions(
    gh: Github, repo: Repository, number: int, head_sha: str, outline: str, login: str
) -> str:
    """Replace our suggestion review with the one for `outline` at `head_sha`; return what was done.

    Raises what the client raises (the caller turns it into one logged line)."""
    mine = ours(list(_reviews(gh, repo, number)), login)
    digest = outline_digest(outline)
    current = [r for r in mine if r.commit_id == head_sha and digest in (r.body or "")]
    if outline.strip() and current:  # this outline on this head: its review stands
        return f"suggestion review unchanged (id {current[-1].id})"
    suggestions: list[Suggestion] = []
    fallbacks: list[Fallback] = []
    if outline.strip():
        suggestions, fallbacks = plan_review(outline, pr_patches(gh, repo, number))
    body = review_body(head_sha, suggestions, fallbacks) + digest + "\n"
    retired = 0
    for old in mine:
        if SUPERSEDED in (old.body or ""):
            continue
        for c in PaginatedList(
            PullRequestComment, gh.requester, f"{repo.url}/pulls/{number}/reviews/{old.id}/comments", None
        ):
            if c.user is not None and c.user.login == login:
                gh.requester.requestJsonAndCheck("DELETE", f"{repo.url}/pulls/comments/{c.id}")
        gh.requester.requestJsonAndCheck(
            "PUT",
            f"{repo.url}/pulls/{number}/reviews/{old.id}",
            input={"body": f"{REVIEW_MARKER}\n{SUPERSEDED}\n"},
        )
        retired += 1
    if not suggestions:
        kept = f"; {len(fallbacks)} hunk(s) only in the comment" if fallbacks else ""
        return f"no suggestion to post{kept}; {retired} old review(s) superseded"
    _, data = gh.requester.requestJsonAndCheck(
        "POST",
        f"{repo.url}/pulls/{number}/reviews",
        input={
            "commit_id": head_sha,
            "body": body,
            "event": "COMMENT",
            "comments": [s.comment() for s in suggestions],
        },
    )
    return (
        f"suggestion review created (id {data.get('id')}): {len(suggestions)} suggestion(s), "
        f"{len(fallbacks)} hunk(s) only in the comment; {retired} old review(s) superseded"
    )
