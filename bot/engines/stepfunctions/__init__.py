"""AWS Step Functions (ASL): collect state machines from both trees, diff them, replay executions.

State machines live in `*.asl.json` / `*.asl.yaml`, in any JSON/YAML file that is one
(`StartAt` + `States`), and in CloudFormation / SAM templates. A running Standard execution
keeps the definition it started with, so definition changes are judged for the NEXT
executions (and for redrive); what a Task calls by an unqualified reference is judged for the
running ones.
"""

from __future__ import annotations

import posixpath
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from git import GitCommandError

from bot.config import Config
from bot.engines.base import Analysis
from bot.engines.stepfunctions.diff import VOCABULARY, diff_machines
from bot.engines.stepfunctions.extract import SFN_TYPES, NotAnalysable, extract_file, looks_relevant
from bot.engines.stepfunctions.model import Reference, StateMachine
from bot.engines.stepfunctions.refs import called_name
from bot.histories import ReplayOptions
from bot.model import (
    Change,
    Definition,
    Finding,
    InFlight,
    Location,
    Picture,
    Plan,
    ReplayResult,
    ReplaySummary,
    Suppression,
)
from bot.repo import FileChange, FileUnreadable, SourceTree, git_bytes, git_grep

EXTENSIONS = (".json", ".yaml", ".yml", ".template")
SUPPRESSION = re.compile(r"inflight-guard:\s*ignore\[([^\]]*)\]\s*(.*)")


@dataclass
class Side:
    """What one tree holds: its state machines and its templates' resources by path."""

    machines: list[StateMachine] = field(default_factory=list)
    resources: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # template path → Resources
    texts: dict[str, str] = field(default_factory=dict)  # path → text of every file read
    problems: list[Change] = field(default_factory=list)  # files that could not be read
    elsewhere: dict[str, list[tuple[str, int, str]]] = field(default_factory=dict)  # path → S3 definitions


@dataclass
class StepFunctionsContext:
    base: Side
    head: Side
    pairs: dict[str, tuple[StateMachine | None, StateMachine | None]]
    names: dict[str, str] = field(default_factory=dict)  # definition id → deployed name (config)
    targets: set[str] = field(default_factory=set)  # keys of what this change alters


# What a Task can call, and the property that gives it its deployed name.
CALLED_TYPES: dict[str, tuple[str, str]] = {
    "AWS::Lambda::Function": ("lambda", "FunctionName"),
    "AWS::Serverless::Function": ("lambda", "FunctionName"),
    "AWS::StepFunctions::StateMachine": ("state_machine", "StateMachineName"),
    "AWS::Serverless::StateMachine": ("state_machine", "Name"),
    "AWS::StepFunctions::Activity": ("activity", "Name"),
}
DEFINITION_SUFFIXES = (".asl.json", ".asl.yaml", ".asl.yml")


def key_of(template: str, logical: str) -> str:
    """A template resource's key: logical ids are unique within one template (one stack) only."""
    return f"{template}#{logical}"


class StepFunctionsEngine:
    name = "stepfunctions"
    noun = "Step Functions state machine"
    # A running execution keeps its definition: one the change leaves alone replays the same on head.
    replays_all = False
    vocabulary = VOCABULARY

    def pictures(self, analysis: Analysis) -> list[Picture]:
        from bot.engines.stepfunctions.picture import pictures

        context = analysis.context
        if not isinstance(context, StepFunctionsContext):
            return []
        return pictures(context.pairs, analysis.definitions, analysis.changes)

    def analyze(
        self, base: SourceTree, head: SourceTree, files: Sequence[FileChange], config: Config
    ) -> Analysis:
        changed = {p for f in files for p in (f.base_path, f.head_path) if p}
        if not changed:
            return Analysis(engine=self.name)
        sides = [Side(), Side()]
        read: set[str] = set()
        todo = {p for p in _reachable(base, head, changed) if config.paths.allows(p)}
        targets: set[str] = set()
        replaced: dict[str, str] = {}
        grepped: set[str] = set()
        # The files the change reaches, then those naming what it alters (or loading what it changed).
        for _ in range(3):
            for i, tree in enumerate((base, head)):
                # A file that held a state machine in base must still read as one in head.
                strict = {x for m in sides[0].machines for x in (m.path, m.source) if x} if i else set()
                self._collect(tree, todo, sides[i], strict)
            read |= todo
            for side in sides:
                _link(side)
            targets, replaced = _changed_targets(sides[0], sides[1], changed)
            names = _names_of(sides, targets | set(replaced))
            todo = set()
            if names:
                found = git_grep([base, head], names, "-F", paths=[f"*{e}" for e in EXTENSIONS])
                todo = {p for hits in found for p in hits}
            # A changed definition no template nearby loads may be loaded from another folder.
            unloaded = {
                m.path for side in sides for m in side.machines if not m.template and m.path in changed
            }
            if unloaded - grepped:
                todo |= _loaders(base, head, unloaded - grepped)
                grepped |= unloaded
            todo = {p for p in todo if p not in read and config.paths.allows(p)}
            if not todo:
                break
        base_side, head_side = sides
        problems, notes = _problems(base_side, head_side)
        # A file unreadable on either side cannot be compared: the error finding speaks for it.
        unknown = {c.location.path for c in base_side.problems + head_side.problems if c.location}
        for side in sides:
            side.machines = [m for m in side.machines if m.path not in unknown and m.source not in unknown]
        exposed = targets | set(replaced)
        relevant = {m.id for m in base_side.machines if _touched(m, changed) or _calls(m, exposed)}
        relevant |= {m.id for m in head_side.machines if _touched(m, changed)}
        base_models = [m for m in base_side.machines if m.id in relevant]
        head_models = [m for m in head_side.machines if m.id in relevant]
        changes, definitions = diff_machines(base_models, head_models, targets, replaced)
        found_suppressions: list[Suppression] = []
        for m in head_models:
            found_suppressions += _suppressions(m)
        pairs = {
            i: (
                next((m for m in base_models if m.id == i), None),
                next((m for m in head_models if m.id == i), None),
            )
            for i in sorted(relevant)
        }
        # A template the change touches whose state machine lives in S3: say it was not compared.
        notes += [
            Change(
                kind="sfn.definition.elsewhere",
                engine="stepfunctions",
                definition="",
                location=Location(path=path, line=line),
                details={"resource": logical, "uri": uri},
            )
            for path, found in sorted(head_side.elsewhere.items())
            if path in changed
            for logical, line, uri in found
        ]
        return Analysis(
            engine=self.name,
            changes=[*problems, *notes, *changes],
            definitions=definitions,
            suppressions=found_suppressions,
            context=StepFunctionsContext(
                base=base_side,
                head=head_side,
                pairs=pairs,
                names=_deployed_names(pairs, config),
                targets=targets,
            ),
        )

    def _collect(self, tree: SourceTree, paths: set[str], side: Side, strict: set[str]) -> None:
        loaded: set[str] = {m.source for m in side.machines if m.source}
        found: list[StateMachine] = []

        def read(path: str) -> str | None:
            try:
                side.texts[path] = tree.read(path)
            except FileUnreadable:
                return None
            return side.texts[path]

        for path in sorted(paths):
            try:
                text = tree.read(path)
            except FileUnreadable as exc:
                if "not present" not in exc.reason and tree.mentions(path, ("StartAt", *SFN_TYPES)):
                    side.problems.append(_unreadable(path, 1, exc.reason, tree.side))
                continue
            if not (looks_relevant(text) or any(t in text for t in CALLED_TYPES)) and path not in strict:
                continue
            side.texts[path] = text
            try:
                found_here = extract_file(path, text, read, strict=path in strict)
            except NotAnalysable as exc:
                side.problems.append(_unreadable(path, exc.line, exc.message, tree.side))
                continue
            except RecursionError:
                side.problems.append(_unreadable(path, 1, "nested too deeply to read", tree.side))
                continue
            loaded |= found_here.loaded
            found += found_here.machines
            if found_here.resources is not None:
                side.resources[path] = found_here.resources
            if found_here.elsewhere:
                side.elsewhere[path] = found_here.elsewhere
        # A file a template loads with DefinitionUri is that template's machine, not one of its own.
        side.machines = [m for m in [*side.machines, *found] if m.template or m.path not in loaded]
        seen: dict[str, int] = {}
        for m in side.machines:
            m.id = _plain_id(m)
            seen[m.id] = seen.get(m.id, 0) + 1
        for m in side.machines:
            if seen[m.id] > 1:
                m.id = f"{m.id} ({m.path})"

    def plan(self, analysis: Analysis, findings: Sequence[Finding], config: Config) -> Plan:
        from bot.engines.stepfunctions.plan import build_plan

        context = analysis.context
        if not isinstance(context, StepFunctionsContext):
            return Plan()
        return build_plan(context, findings, analysis.definitions, config)

    def replay(self, analysis: Analysis, options: ReplayOptions) -> tuple[list[ReplayResult], ReplaySummary]:
        from bot.engines.stepfunctions.replay import run_replay

        context = analysis.context
        if not isinstance(context, StepFunctionsContext):
            # No state machine was read: every execution is named as one the change does not touch.
            return run_replay({}, options)
        return run_replay(context.pairs, options, context.names)

    def replay_changes(
        self,
        results: Sequence[ReplayResult],
        summary: ReplaySummary,
        definitions: Sequence[Definition],
        static: Sequence[Finding],
    ) -> list[Change]:
        from bot.engines.stepfunctions.evidence import replay_changes

        return replay_changes(results, summary, definitions, static)

    def live_in_flight(
        self, address: str, config: Config, definitions: Sequence[Definition]
    ) -> dict[str, InFlight]:
        from bot.engines.stepfunctions.inflight import credentials_available, live_figures

        mine = [
            d
            for d in definitions
            if d.engine == self.name and d.status in ("changed", "removed", "unchanged")
        ]
        if not mine or config.stepfunctions.live_counts == "off" or not credentials_available():
            return {}
        out: dict[str, InFlight] = {}
        by_region: dict[str | None, dict[str, str]] = {}
        for d in mine:
            own = config.for_path(d.path).stepfunctions
            if own.live_counts != "off":
                by_region.setdefault(own.region, {})[d.id] = own.names.get(d.id, d.id)
        for region, names in by_region.items():
            figures = live_figures(sorted(set(names.values())), region)
            out.update({def_id: figures[n] for def_id, n in names.items() if n in figures})
        return out


def _deployed_names(
    pairs: dict[str, tuple[StateMachine | None, StateMachine | None]], config: Config
) -> dict[str, str]:
    """Deployed name per definition id where the config gives one (a path section's first)."""
    names = dict(config.stepfunctions.names)
    for def_id, (old, new) in pairs.items():
        model = new or old
        own = config.for_path(model.path if model else None).stepfunctions.names
        if def_id in own:
            names[def_id] = own[def_id]
    return names


def _plain_id(m: StateMachine) -> str:
    return m.id.removesuffix(f" ({m.path})")


def _touched(m: StateMachine, changed: set[str]) -> bool:
    return m.path in changed or (m.source is not None and m.source in changed)


def _calls(m: StateMachine, keys: set[str]) -> bool:
    """True when running executions of `m` call one of `keys` unpinned (or an activity among them)."""
    return any(
        r.key in keys and (not r.qualified or r.alias or r.kind == "activity")
        for refs in m.references.values()
        for r in refs
    )


def _reachable(base: SourceTree, head: SourceTree, changed: set[str]) -> set[str]:
    """Files the change can reach: the changed ones and the templates in the folders above them
    (their DefinitionUri and CodeUri point down). Read from the tree listing: no file is opened."""
    out = {p for p in changed if p.endswith(EXTENSIONS)}
    folders = {posixpath.dirname(p) for p in changed}
    for p in list(folders):
        while p:
            p = posixpath.dirname(p)
            folders.add(p)
    for tree in (base, head):
        out |= {p for p in _listed(tree, folders) if p.endswith(EXTENSIONS)}
    return out


def _listed(tree: SourceTree, folders: set[str]) -> set[str]:
    """The files directly in `folders` (the top folder from its tree object, the others from one
    `git ls-tree` a side: the cost follows the folders)."""
    specs = [f"{f}/" for f in sorted(folders) if f]
    out: set[str] = set(tree.root_files()) if "" in folders else set()
    if specs:
        # Folder names come from the pull request: read them as paths, never as pathspec magic.
        raw = git_bytes(
            tree.repo, "--literal-pathspecs", "ls-tree", "-z", "--full-tree", tree.sha, "--", *specs
        )
        for entry in raw.split(b"\0"):
            meta, tab, path = entry.partition(b"\t")
            if tab and meta.split(b" ")[1] == b"blob":
                out.add(path.decode("utf-8", "surrogateescape"))
    return out


def _loaders(base: SourceTree, head: SourceTree, files: set[str]) -> set[str]:
    """Templates elsewhere whose DefinitionUri may load one of `files` (a `../` path): one `git grep`
    for the file names, each matching line checked for the path relative to its own template."""
    stems = sorted({posixpath.basename(p) for p in files if "\n" not in p})
    shas = list(dict.fromkeys((base.sha, head.sha)))
    if not stems:
        return set()
    # The names go through a file: their number grows with the change, and argv has a limit.
    with tempfile.NamedTemporaryFile("wb", prefix="inflight-guard-", suffix=".patterns") as listed:
        listed.write("".join(f"{n}\n" for n in stems).encode("utf-8", "surrogateescape"))
        listed.flush()
        try:
            raw = git_bytes(
                base.repo,
                "grep",
                "-z",
                "-I",
                "-F",
                "-f",
                listed.name,
                *shas,
                "--",
                *[f"*{e}" for e in EXTENSIONS],
            )
        except GitCommandError as exc:
            if exc.status != 1:  # 1: no match
                raise
            return set()
    out: set[str] = set()
    # Records are `SHA:PATH NUL LINE NEWLINE`.
    at = 0
    while at < len(raw):
        nul = raw.index(b"\0", at)
        end = raw.find(b"\n", nul)
        end = len(raw) if end < 0 else end
        _, _, name = raw[at:nul].partition(b":")
        path = name.decode("utf-8", "surrogateescape")
        line = raw[nul + 1 : end].decode("utf-8", "replace")
        folder = posixpath.dirname(path) or "."
        if any(posixpath.relpath(f, folder) in line for f in files):
            out.add(path)
        at = end + 1
    return out


def _link(side: Side) -> None:
    """Give every reference the key of what it calls: a logical id within its own template; a literal
    ARN or name through the `FunctionName` / `StateMachineName` / `Name` the repository deploys."""
    named: dict[tuple[str, str], str] = {}
    auto_alias: dict[str, str] = {}  # function key → its AutoPublishAlias
    for path, resources in sorted(side.resources.items()):
        for logical, resource in resources.items():
            kind, prop = _called(resource)
            if not kind:
                continue
            name = _prop(resource, prop)
            if isinstance(name, str) and name and "${" not in name:
                named.setdefault((kind, name), key_of(path, str(logical)))
            published = _prop(resource, "AutoPublishAlias")
            if isinstance(published, str):
                auto_alias[key_of(path, str(logical))] = published
    for m in side.machines:
        for state, refs in m.references.items():
            linked: list[Reference] = []
            for r in refs:
                key: str | None = None
                alias = r.alias
                if r.target is not None and m.template:
                    key = key_of(m.template, r.target)
                else:
                    name = called_name(r.kind, r.text)
                    key = named.get((r.kind, name)) if name else None
                    if key is not None and r.alias:
                        # An alias moves with the deploy only when the repository moves it (AutoPublishAlias).
                        alias = r.text.rsplit(":", 1)[-1] == auto_alias.get(key)
                linked.append(replace(r, key=key, alias=alias))
            m.references[state] = linked


def _called(resource: Any) -> tuple[str, str]:
    if not isinstance(resource, Mapping):
        return "", ""
    return CALLED_TYPES.get(str(resource.get("Type")), ("", ""))


def _names_of(sides: Sequence[Side], keys: set[str]) -> set[str]:
    """The deployed names of the resources behind `keys` (what other stacks would call them by)."""
    out: set[str] = set()
    for side in sides:
        for path, resources in side.resources.items():
            for logical, resource in resources.items():
                kind, prop = _called(resource)
                if kind and key_of(path, str(logical)) in keys:
                    name = _prop(resource, prop)
                    if isinstance(name, str) and len(name) > 2 and "${" not in name:
                        out.add(name)
    return out


def _changed_targets(base: Side, head: Side, changed: set[str]) -> tuple[set[str], dict[str, str]]:
    """Keys of the template resources this change alters (what unpinned calls reach), and of the
    activities CloudFormation replaces or deletes (key → how)."""
    out: set[str] = set()
    replaced: dict[str, str] = {}
    # A state machine file inside a function's CodeUri folder is not the function's code.
    definitions = {x for side in (base, head) for m in side.machines for x in (m.path, m.source) if x}
    code_files = {p for p in changed if p not in definitions and not p.endswith(DEFINITION_SUFFIXES)}
    for path, resources in head.resources.items():
        before = base.resources.get(path, {})
        folder = posixpath.dirname(path)
        for logical, resource in resources.items():
            key = key_of(path, str(logical))
            old = before.get(logical)
            if _is_lambda_alias(resource):
                # An alias moved by this deploy (another version, another weight) moves running calls.
                if old is not None and _behaviour(old) != _behaviour(resource):
                    out.add(key)
                continue
            kind, prop = _called(resource)
            if not kind or kind == "state_machine":
                continue
            if kind == "activity":
                if isinstance(old, Mapping) and _prop(old, prop) != _prop(resource, prop):
                    replaced[key] = f"its Name `{_prop(old, prop)}` is now `{_prop(resource, prop)}`"
                continue
            if old is not None and _behaviour(old) != _behaviour(resource):
                out.add(key)
            code = _prop(resource, "CodeUri")
            if isinstance(code, str) and not code.startswith("s3://"):
                root = posixpath.normpath(posixpath.join(folder, code))
                prefix = "" if root == "." else root.rstrip("/") + "/"
                if any(p.startswith(prefix) or p == root for p in code_files):
                    out.add(key)
    for path, resources in base.resources.items():
        after = head.resources.get(path)
        if after is None:
            continue  # the template is gone or unreadable: its machines go with it
        for logical, resource in resources.items():
            if _called(resource)[0] == "activity" and logical not in after:
                replaced[key_of(path, str(logical))] = "it is removed from the template"
    base_by = {(m.template or m.path, m.resource): m for m in base.machines}
    for m in head.machines:
        old_m = base_by.get((m.template or m.path, m.resource))
        if old_m is None or old_m.resource is None or m.template is None:
            continue
        subs = [
            _prop(side.resources.get(m.template, {}).get(old_m.resource), "DefinitionSubstitutions")
            for side in (base, head)
        ]
        if old_m.meaning != m.meaning or subs[0] != subs[1]:
            out.add(key_of(m.template, old_m.resource))
    return out, replaced


def _is_lambda_alias(resource: Any) -> bool:
    return isinstance(resource, Mapping) and resource.get("Type") == "AWS::Lambda::Alias"


def _behaviour(resource: Any) -> Any:
    """A function resource without what does not change what it does (its description, tags, metadata)."""
    if not isinstance(resource, Mapping):
        return resource
    out = {
        k: v for k, v in resource.items() if k not in ("Metadata", "DeletionPolicy", "UpdateReplacePolicy")
    }
    props = out.get("Properties")
    if isinstance(props, Mapping):
        out["Properties"] = {k: v for k, v in props.items() if k not in ("Description", "Tags")}
    return out


def _prop(resource: Any, name: str) -> Any:
    props = resource.get("Properties") if isinstance(resource, Mapping) else None
    return props.get(name) if isinstance(props, Mapping) else None


def _problems(base: Side, head: Side) -> tuple[list[Change], list[Change]]:
    """Unreadable files: errors of this change, and (as notes) those that fail alike in base and head."""

    def what(c: Change) -> tuple[str, object]:
        return (c.location.path if c.location else "", c.details.get("reason"))

    alike = {what(c) for c in head.problems} & {what(c) for c in base.problems}
    errors = [c for c in base.problems + head.problems if what(c) not in alike]
    notes = [
        c.model_copy(update={"kind": "sfn.definition.broken_before"})
        for c in head.problems
        if what(c) in alike
    ]
    return errors, notes


def _suppressions(m: StateMachine) -> list[Suppression]:
    """`"Comment": "inflight-guard: ignore[SFN104] reason"` on a state covers that state's lines."""
    out: list[Suppression] = []
    path = m.source or m.path
    for s in m.states.values():
        comment = s.body.get("Comment")
        if not isinstance(comment, str):
            continue
        match = SUPPRESSION.search(comment)
        if match:
            ids = tuple(i.strip() for i in match.group(1).split(",") if i.strip())
            out.append(
                Suppression(
                    rules=ids,
                    reason=match.group(2).strip(),
                    location=Location(path=path, line=s.line, end_line=s.end_line),
                )
            )
    return out


def _unreadable(path: str, line: int, message: str, side: str) -> Change:
    prefix = "" if side == "head" else "base version: "
    return Change(
        kind="sfn.definition.invalid",
        engine="stepfunctions",
        definition="",
        location=Location(path=path, line=line, side="head" if side == "head" else "base"),
        details={
            "code": "UNREADABLE",
            "message": f"{prefix}{path}:{line}: {message}",
            "parse": True,
            "reason": message,
        },
    )
