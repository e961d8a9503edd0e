"""Trim GitHub's OpenAPI description and the Octokit webhook packages down to what our tests use.

Run by ``rebuild.sh`` (which fetches the npm packages); it can also be run by hand::

    python tests/github/trim.py OPENAPI_PKG_DIR EXAMPLES_PKG_DIR SCHEMAS_PKG_DIR

where each argument is the ``package/`` directory of an unpacked ``npm pack`` tarball of
``@octokit/openapi``, ``@octokit/webhooks-examples`` and ``@octokit/webhooks-schemas``.

Outputs, next to this file (JSON with sorted keys, 1-space indent, trailing newline: re-running on
the same inputs gives byte-identical files):

* ``openapi.json``: ``generated/api.github.com.json`` keeping only the operations in ``OPERATIONS``
  and every component they reference, transitively. Dropped to keep it small: response
  ``examples`` (and ``components/examples``), top-level ``tags`` / ``x-webhooks`` / ``externalDocs``.
  Schemas, parameters, responses and headers are kept verbatim, except for one fix below.
* ``webhooks/<event>.<action>.json``: one example payload per entry of ``PAYLOADS`` (the first
  example of that event and action that validates against its webhooks-schemas definition; the
  older ones in the package predate some required fields), plus ``issue_comment.created.on_pr.json``.
* ``webhooks-schema.json``: ``schema.json`` of webhooks-schemas trimmed to the definitions those
  payloads need (transitively), as a draft-07 schema with a ``definitions`` section.

The one change made to GitHub's schemas -- NULLABLE ENUMS: GitHub's description marks some enums
``nullable: true`` without listing ``null`` among the ``enum`` values (150 of them in
api.github.com.json 23.0.2, e.g. ``state_reason`` of issues/update, ``dismissed_reason`` of Dependabot
alerts). Since OpenAPI 3.0.3 ``nullable`` does not widen an ``enum``, so strict validators
(openapi-core / openapi-schema-validator) reject the ``null`` that GitHub actually sends.
``fix_nullable_enums`` appends ``null`` to every such enum and prints where. (None of the
operations kept today has one; the fix is there for when ``OPERATIONS`` grows.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

OPERATIONS = (
    "repos/get",
    "pulls/get",
    "pulls/list-files",
    "issues/list-comments",
    "issues/create-comment",
    "issues/get-comment",
    "issues/update-comment",
    "issues/delete-comment",
    "pulls/list",
    "actions/list-workflow-runs-for-repo",
    "actions/re-run-workflow",
    "repos/create-commit-status",
    "repos/get-combined-status-for-ref",
    "repos/list-commit-statuses-for-ref",
    "reactions/create-for-issue-comment",
    "repos/get-collaborator-permission-level",
    "users/get-authenticated",
    "rate-limit/get",
    "teams/get-membership-for-user-in-org",
    "pulls/create-review",
    "pulls/list-reviews",
    "pulls/update-review",
    "pulls/list-comments-for-review",
    "pulls/delete-review-comment",
)

# (event, action, output file stem)
PAYLOADS = (
    ("pull_request", "opened", "pull_request.opened"),
    ("pull_request", "synchronize", "pull_request.synchronize"),
    ("pull_request", "reopened", "pull_request.reopened"),
    ("issue_comment", "created", "issue_comment.created"),
    ("workflow_run", "completed", "workflow_run.completed"),
    ("merge_group", "checks_requested", "merge_group.checks_requested"),
)

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def dump(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(HERE.parent.parent)} ({path.stat().st_size:,} bytes)")


def iter_refs(node: Any):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from iter_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from iter_refs(value)


def resolve_pointer(doc: Any, ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local refs are supported: {ref}")
    node = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def drop_examples(node: Any) -> Any:
    """Remove media-type ``examples`` maps (they only point at components/examples)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if (
                key == "examples"
                and isinstance(value, dict)
                and all(
                    isinstance(v, dict) and set(v) <= {"$ref", "summary", "value", "description"}
                    for v in value.values()
                )
            ):
                continue
            out[key] = drop_examples(value)
        return out
    if isinstance(node, list):
        return [drop_examples(v) for v in node]
    return node


def fix_nullable_enums(node: Any, where: str, patched: list[str]) -> None:
    if isinstance(node, dict):
        enum = node.get("enum")
        if node.get("nullable") is True and isinstance(enum, list) and None not in enum:
            enum.append(None)
            patched.append(where)
        for key, value in node.items():
            fix_nullable_enums(value, f"{where}/{key}", patched)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            fix_nullable_enums(value, f"{where}/{i}", patched)


def trim_openapi(src: Path) -> dict[str, Any]:
    full = json.loads(src.read_text(encoding="utf-8"))
    paths: dict[str, Any] = {}
    found: set[str] = set()
    for path, item in full["paths"].items():
        kept = {}
        for method, op in item.items():
            if method in HTTP_METHODS and op.get("operationId") in OPERATIONS:
                kept[method] = op
                found.add(op["operationId"])
        if kept:
            # path-level parameters / servers, if any, come along
            kept.update({k: v for k, v in item.items() if k not in HTTP_METHODS})
            paths[path] = kept
    missing = set(OPERATIONS) - found
    if missing:
        raise SystemExit(f"operations not found in {src}: {sorted(missing)}")
    paths = drop_examples(paths)

    components: dict[str, dict[str, Any]] = {}
    todo = list(iter_refs(paths))
    seen: set[str] = set()
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        parts = ref[2:].split("/")
        if parts[0] != "components" or len(parts) != 3:
            raise SystemExit(f"unexpected $ref {ref}")
        target = drop_examples(resolve_pointer(full, ref))
        components.setdefault(parts[1], {})[parts[2]] = target
        todo.extend(iter_refs(target))

    out = {
        "openapi": full["openapi"],
        "info": {
            **full["info"],
            "x-trimmed": "tests/github/trim.py: only the operations the bot uses; nullable enums include null",
        },
        "servers": full["servers"],
        "paths": paths,
        "components": components,
    }
    patched: list[str] = []
    fix_nullable_enums(out, "#", patched)
    for where in patched:
        print(f"  nullable enum += null: {where}")
    return out


def pick_payload(
    examples: list[dict[str, Any]], event: str, action: str, schema: dict[str, Any]
) -> dict[str, Any]:
    import jsonschema

    validator = jsonschema.Draft7Validator({"$ref": f"#/definitions/{event}${action}", **schema})
    group = next(g for g in examples if g["name"] == event)
    for example in group["examples"]:
        if example.get("action") == action and not list(validator.iter_errors(example)):
            return example
    raise SystemExit(f"no valid example of {event}.{action}")


def trim_schema(schema: dict[str, Any], roots: list[str]) -> dict[str, Any]:
    definitions: dict[str, Any] = {}
    todo = [f"#/definitions/{r}" for r in roots]
    while todo:
        ref = todo.pop()
        name = ref.removeprefix("#/definitions/")
        if name in definitions:
            continue
        if "/" in name:
            raise SystemExit(f"unexpected $ref {ref}")
        definitions[name] = schema["definitions"][name]
        todo.extend(iter_refs(definitions[name]))
    return {
        "$schema": schema["$schema"],
        "$comment": "@octokit/webhooks-schemas schema.json, trimmed by tests/github/trim.py",
        "definitions": definitions,
    }


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise SystemExit(__doc__)
    openapi_pkg, examples_pkg, schemas_pkg = (Path(a) for a in argv)

    dump(trim_openapi(openapi_pkg / "generated" / "api.github.com.json"), HERE / "openapi.json")

    schema = json.loads((schemas_pkg / "schema.json").read_text(encoding="utf-8"))
    examples = json.loads((examples_pkg / "api.github.com" / "index.json").read_text(encoding="utf-8"))
    out_dir = HERE / "webhooks"
    out_dir.mkdir(exist_ok=True)
    for old in out_dir.glob("*.json"):
        old.unlink()
    roots = []
    for event, action, stem in PAYLOADS:
        payload = pick_payload(examples, event, action, schema)
        roots.append(f"{event}${action}")
        dump(payload, out_dir / f"{stem}.json")
        if event == "issue_comment":
            if "pull_request" in payload["issue"]:
                raise SystemExit("the issue_comment example is already on a PR: revisit trim.py")
            # A comment on a PR is an issue_comment whose issue has `pull_request` (as GitHub sends).
            on_pr = json.loads(json.dumps(payload))
            repo_url = payload["repository"]["url"]
            html_url = payload["repository"]["html_url"]
            number = payload["issue"]["number"]
            on_pr["issue"]["pull_request"] = {
                "url": f"{repo_url}/pulls/{number}",
                "html_url": f"{html_url}/pull/{number}",
                "diff_url": f"{html_url}/pull/{number}.diff",
                "patch_url": f"{html_url}/pull/{number}.patch",
                "merged_at": None,
            }
            on_pr["issue"]["html_url"] = f"{html_url}/pull/{number}"
            on_pr["comment"]["html_url"] = on_pr["comment"]["html_url"].replace(
                f"/issues/{number}#", f"/pull/{number}#"
            )
            dump(on_pr, out_dir / f"{stem}.on_pr.json")
    dump(trim_schema(schema, roots), HERE / "webhooks-schema.json")


if __name__ == "__main__":
    main(sys.argv[1:])
