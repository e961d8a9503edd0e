"""Judge: rule packs (data) turn change facts into findings (mechanism).

A rule matches change kinds plus a few fixed conditions (`gated`, `in_flight`, `pinned`,
`engine_version`, and equality on the change's `details`). Users override severities,
disable rules and add packs in their config; inline suppressions apply here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot import yamlsafe
from bot.config import Config, duplicate_key, line_of
from bot.errors import UserError
from bot.model import Change, Definition, Finding, Location, Scalar, Severity, Suppression

CORE_VOCABULARY: dict[str, str] = {
    "core.suppression.missing_reason": "An inline suppression comment gives no reason; it is not applied.",
    "core.suppression.unknown_rule": "An inline suppression names a rule no pack defines.",
    "core.config.changed": "The pull request changes the inflight-guard config; the check used the base branch's.",
}

GateRecipe = Literal[
    "patch", "get-version", "worker-versioning", "new-type", "version-alias", "drain", "none"
]


class Conditions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    gated: bool | None = None
    in_flight: bool | None = None
    pinned: bool | None = None
    engine_version: str | None = None
    details: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)

    @field_validator("engine_version")
    @classmethod
    def _specifier(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                SpecifierSet(value)
            except InvalidSpecifier:
                raise ValueError(f"not a version specifier: {value!r}") from None
        return value


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Z]{2,4}\d{3}$")
    slug: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    aliases: list[str] = Field(default_factory=list)
    severity: Severity
    match: list[str] = Field(min_length=1)
    when: Conditions = Field(default_factory=Conditions)
    title: str
    message: str
    why: str
    fix: str
    gate: GateRecipe = "none"
    scope: Literal["in_flight", "all_executions"] = "in_flight"
    locked: bool = Field(
        default=False, description="Config can neither disable it nor change its severity; no suppression."
    )
    example: str = ""


class RulePack(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: str
    description: str = ""
    rules: list[Rule]


def rules_dir() -> Path:
    """Return the folder of the shipped packs (inside the wheel, or the source checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "rules", here.parent / "rules"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError("the shipped rule packs are missing from this installation")


def load_pack(text: str, source: str, *, shipped: bool = False) -> RulePack:
    """Return a validated rule pack, or one error line naming `source`.

    Only `shipped` packs (ours, in the wheel) are read with libyaml: it is fast, but it has no depth
    limit and crashes the process on a pathologically nested document.
    """
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader) if shipped else yaml.SafeLoader
    try:
        root, data = yamlsafe.load(text, loader)
    except yamlsafe.YamlUnbounded as exc:
        raise UserError(f"{source}:{exc.line}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{source}{where}: invalid YAML in rule pack") from None
    repeated = duplicate_key(root)
    if repeated:
        raise UserError(f"{source}:{repeated[1]}: key '{repeated[0]}' appears twice")
    try:
        return RulePack.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [p for p in err["loc"] if isinstance(p, int | str)]
        line = line_of(root, loc) or 1
        raise UserError(f"{source}:{line}: {'.'.join(str(p) for p in loc)}: {err['msg']}") from None


def builtin_packs() -> list[RulePack]:
    folder = rules_dir()
    return [
        load_pack(p.read_text(encoding="utf-8"), p.name, shipped=True) for p in sorted(folder.glob("*.yaml"))
    ]


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


def _fingerprint(rule: Rule, change: Change) -> str:
    stable = {k: v for k, v in change.details.items() if not k.endswith(("line", "path"))}
    raw = f"{rule.id}|{change.engine}|{change.definition}|{change.kind}|{sorted(stable.items())}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Facts:
    """What the judge knows about a definition besides the change itself."""

    in_flight: bool  # True when executions may be open (count > 0 or unknown)
    pinned: bool
    engine_version: str | None


def _where(details: Mapping[str, Scalar]) -> str:
    sequence = str(details.get("sequence", "run"))
    function = details.get("function")
    if sequence == "run":
        return f"in `{function}()`" if function else "in the run method"
    kind, _, name = sequence.partition(":")
    return f"in the `{name}` {kind} handler"


class Policy:
    """The effective rules after the user's config; judges changes into findings."""

    def __init__(self, packs: Sequence[RulePack], config: Config) -> None:
        self.config = config
        rules: list[Rule] = []
        seen: dict[str, str] = {}
        for pack in packs:
            for rule in pack.rules:
                for key in (rule.id, rule.slug, *rule.aliases):
                    if key in seen:
                        raise UserError(f"rule pack {pack.engine}: '{key}' is defined twice ({seen[key]})")
                    seen[key] = rule.id
                rules.append(rule)
        self._index = seen
        unknown = [k for k in [*config.rules.severity, *config.rules.disable] if k not in seen]
        if unknown:
            raise UserError(
                f"config: unknown rule(s) {', '.join(sorted(unknown))} (see `inflight-guard rules`)"
            )
        locked = {r.id for r in rules if r.locked}
        refused = sorted({k for k in [*config.rules.severity, *config.rules.disable] if seen[k] in locked})
        if refused:
            raise UserError(
                f"config: {', '.join(refused)} cannot be disabled or re-graded "
                "(replay failures and undecidable replays always count)"
            )
        disabled = {seen[k] for k in config.rules.disable}
        overrides = {seen[k]: sev for k, sev in config.rules.severity.items()}
        self.rules = [
            r.model_copy(update={"severity": overrides.get(r.id, r.severity)})
            for r in rules
            if r.id not in disabled
        ]
        self.all_rules = rules

    def find(self, key: str) -> Rule | None:
        rule_id = self._index.get(key) or self._index.get(key.upper())
        return next((r for r in self.all_rules if r.id == rule_id), None)

    def _matches(self, rule: Rule, change: Change, facts: Facts) -> bool:
        if change.kind not in rule.match:
            return False
        when = rule.when
        if when.gated is not None and when.gated != change.gated:
            return False
        if when.in_flight is not None and when.in_flight != facts.in_flight:
            return False
        if when.pinned is not None and when.pinned != facts.pinned:
            return False
        if when.engine_version and facts.engine_version:
            try:
                if Version(facts.engine_version) not in SpecifierSet(when.engine_version):
                    return False
            except InvalidVersion:
                pass
        for key, expected in when.details.items():
            actual = change.details.get(key, False if isinstance(expected, bool) else None)
            allowed = expected if isinstance(expected, list) else [expected]
            if actual not in allowed:
                return False
        return True

    def judge(
        self,
        changes: Iterable[Change],
        definitions: Sequence[Definition],
        suppressions: Sequence[Suppression],
    ) -> list[Finding]:
        """Return the findings for `changes`, with inline suppressions applied."""
        by_id = {(d.engine, d.id): d for d in definitions}
        valid, suppression_changes = self._check_suppressions(suppressions)
        findings: list[Finding] = []
        for change in [*changes, *suppression_changes]:
            d = by_id.get((change.engine, change.definition))
            facts = Facts(
                in_flight=d is None or d.in_flight.count != 0,
                pinned=d is not None and d.pinned,
                engine_version=self._engine_version(change.engine),
            )
            for rule in self.rules:
                if self._matches(rule, change, facts):
                    findings.append(self._finding(rule, change, valid))
        findings.sort(key=lambda f: (-f.severity.rank, f.location.path if f.location else "", f.rule))
        return findings

    def _engine_version(self, engine: str) -> str | None:
        section = getattr(self.config, engine, None)
        return getattr(section, "sdk_version", None)

    def _finding(self, rule: Rule, change: Change, suppressions: Sequence[Suppression]) -> Finding:
        fields = _Fields({k: str(v) for k, v in change.details.items()})
        fields["definition"] = change.definition
        fields["where"] = _where(change.details)
        message = rule.message.strip().format_map(fields)
        found = _suppressed_by(rule, change.location, suppressions)
        # A suppression this change adds is the PR waiving its own finding: it waits for an ack.
        by = found[1] if found and not found[0].added else None
        pending = found[1] if found and found[0].added else None
        return Finding(
            rule=rule.id,
            slug=rule.slug,
            severity=rule.severity,
            title=rule.title,
            message=message,
            definition=change.definition or None,
            location=change.location,
            change=change,
            gated=change.gated,
            suppressed=by is not None,
            suppressed_by=by,
            pending_suppression=pending,
            fix=rule.fix.strip(),
            gate=rule.gate,
            scope=rule.scope,
            fingerprint=_fingerprint(rule, change),
        )

    def _check_suppressions(
        self, suppressions: Sequence[Suppression]
    ) -> tuple[list[Suppression], list[Change]]:
        valid: list[Suppression] = []
        problems: list[Change] = []
        for s in suppressions:
            unknown = [r for r in s.rules if r != "all" and self.find(r) is None]
            for name in unknown:
                problems.append(
                    Change(
                        kind="core.suppression.unknown_rule",
                        engine="core",
                        definition="",
                        location=s.location,
                        details={"name": name},
                    )
                )
            if not s.reason:
                problems.append(
                    Change(
                        kind="core.suppression.missing_reason",
                        engine="core",
                        definition="",
                        location=s.location,
                        details={"rules": ", ".join(s.rules)},
                    )
                )
                continue
            ids = tuple(
                r if r == "all" else (self._index.get(r) or self._index.get(r.upper()) or r) for r in s.rules
            )
            valid.append(s.model_copy(update={"rules": ids}))
        return valid, problems


def _suppressed_by(
    rule: Rule, location: Location, suppressions: Sequence[Suppression]
) -> tuple[Suppression, str] | None:
    """Return the suppression on the finding's own line or the line above it (head code only)."""
    if rule.id.startswith("IG") or rule.locked or location.side != "head":
        return None
    for s in suppressions:
        if s.location.path != location.path or (rule.id not in s.rules and "all" not in s.rules):
            continue
        # A comment covers its own line and the next; a span (a Step Functions state) all of its lines.
        last = s.location.end_line or s.location.line + 1
        if s.location.line <= location.line <= last:
            return s, f"{s.location}: {s.reason}"
    return None
