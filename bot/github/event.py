"""The webhook payloads the action reads, as pydantic models (only the fields it uses)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.errors import UserError


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class User(_Model):
    login: str
    type: str = "User"


class RepoRef(_Model):
    full_name: str


class Ref(_Model):
    sha: str
    ref: str
    repo: RepoRef | None = None


class PullRequest(_Model):
    number: int
    head: Ref
    base: Ref
    user: User
    html_url: str = ""


class Repository(_Model):
    full_name: str
    default_branch: str = "main"


class PullRequestEvent(_Model):
    action: str
    number: int
    pull_request: PullRequest
    repository: Repository

    @property
    def from_fork(self) -> bool:
        head = self.pull_request.head.repo
        return head is None or head.full_name != self.repository.full_name


class IssueLink(_Model):
    url: str = ""


class Issue(_Model):
    number: int
    pull_request: IssueLink | None = None


class Comment(_Model):
    id: int
    body: str = ""
    user: User


class IssueCommentEvent(_Model):
    action: str
    issue: Issue
    comment: Comment
    repository: Repository


class WorkflowRunPull(_Model):
    number: int
    head: Ref


class WorkflowRun(_Model):
    id: int
    conclusion: str | None = None
    head_sha: str
    head_branch: str | None = None
    head_repository: RepoRef | None = None
    # Not used to find the PR (empty for forks, and the run's own record): kept for the payload's shape.
    pull_requests: list[WorkflowRunPull] = []


class WorkflowRunEvent(_Model):
    action: str
    workflow_run: WorkflowRun
    repository: Repository


class MergeGroup(_Model):
    head_sha: str
    head_ref: str
    base_sha: str
    base_ref: str = ""

    @property
    def pull_number(self) -> int | None:
        """The pull request this group was made for: GitHub names its branch
        `gh-readonly-queue/<base>/pr-<number>-<head sha of that PR>`; None when the name is not that."""
        m = re.search(r"/pr-(\d+)-[0-9a-f]{40}$", self.head_ref)
        return int(m.group(1)) if m else None


class MergeGroupEvent(_Model):
    action: str
    merge_group: MergeGroup
    repository: Repository


Event = PullRequestEvent | IssueCommentEvent | WorkflowRunEvent | MergeGroupEvent

MODELS: dict[str, type[_Model]] = {
    "pull_request": PullRequestEvent,
    "pull_request_target": PullRequestEvent,
    "issue_comment": IssueCommentEvent,
    "workflow_run": WorkflowRunEvent,
    "merge_group": MergeGroupEvent,
}


def load_event(name: str, path: Path) -> _Model:
    """Return the payload of event `name` at `path`; one clear line when it is not what it should be."""
    model = MODELS.get(name)
    if model is None:
        raise UserError(
            f"GITHUB_EVENT_NAME={name}: inflight-guard runs on pull_request, pull_request_target, "
            "issue_comment, workflow_run or merge_group"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"GITHUB_EVENT_PATH {path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UserError(f"GITHUB_EVENT_PATH {path}: not JSON ({exc})") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"GITHUB_EVENT_PATH {path}: not a {name} payload ({where}: {first['msg']})") from None
