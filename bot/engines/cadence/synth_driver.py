"""Synthesized in-flight histories for Cadence: the BASE workflows run on the SDK's decision engine.

Run as `python synth_driver.py CONFIG.json` in the USER's interpreter (their
cadence-python-client, which the replay adapter in runner.py pins), with the materialized base
tree as the working directory. Standalone like runner.py: the standard library, the cadence SDK
and hypothesis; its siblings server.py (the server's part around the SDK's `WorkflowEngine`),
values.py (values from types) and runner.py (the adapter, the shared runner helpers) are loaded
by path.

CONFIG.json  {"paths": [import roots], "workflows": [{"type", "modules", "class", "file"}],
              "out": dir, "executions": 8, "histories": 64, "max_events": 1000, "seconds": S,
              "address": null, "hypothesis_home": dir or null (hypothesis's Unicode tables)}
stdout       {"kind": "ready", "sdk", "python"}, then per history written {"kind": "history",
              "type", "file", "variant", "event_id", "point", "open": true}, per workflow
              {"kind": "reached", "type", "executions", "commands", "variants", "truncated"}, any
              problem {"kind": "error", "type", "message"}, last {"kind": "done"}. Exit 2 (one
              error line) only when the run cannot start.

No activity runs: the driver is the server, and what an activity returns is a value of its
declared return type (the registered activity found in the loaded base modules; the type the
call site decodes into when none is registered), built by hypothesis: the minimal value, or a
"flipped" one whose leaves are truthy and non-empty. Variants within the budget of executions:
minimal, flipped (results and inputs), signals (every signal the workflow defines, delivered at
the first wait), and "fail <activity>#k" (the k-th call of that activity fails, so `except`
paths and compensations run), found breadth-first from the calls earlier executions reached.
Timers fire at once (only the history's clock moves). A history is kept at every point an
execution waits, after each decision task, never at its closed end; identical prefixes (the same
event kinds and names) are kept once. Messages name types and places, never a value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import json
import logging
import os
import re
import sys
import time
import typing
import uuid
from collections.abc import Callable, Iterator
from typing import Any


def _sibling(file: str) -> Any:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), file)
    name = os.path.basename(file)[:-3]
    spec = importlib.util.spec_from_file_location(f"inflight_guard_cadence_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _sibling("runner.py")
server = _sibling("server.py")
values = _sibling("../python/values.py")
shared = runner.shared

DEFAULTS = {"executions": 8, "histories": 64, "max_events": 1000, "seconds": 300.0}
IDENTITY = "inflight-guard synthesized"
FAILURE_REASON = "SynthesizedActivityFailure"


class CannotStart(Exception):
    """The run cannot begin (config, SDK, hypothesis): one error line, exit 2."""


def _return_type(definition: Any) -> Any:
    try:
        return typing.get_type_hints(definition.impl_fn).get("return", Any)
    except Exception:  # an annotation that does not resolve: the SDK's own reading of it
        return getattr(definition.signature, "return_type", Any)


def declared_results(roots: list[str]) -> dict[tuple[str, str], Any]:
    """Return types by ("activity" | "child", registered name), from the base modules loaded."""
    from cadence._internal.activity._definition import BaseDefinition
    from cadence.worker import Registry

    found: dict[tuple[str, str], Any] = {}
    for module in list(sys.modules.values()):
        path = os.path.realpath(getattr(module, "__file__", None) or "/")
        if not any(path.startswith(root) for root in roots):
            continue
        for value in list(vars(module).values()):
            activities: list[Any] = []
            if isinstance(value, BaseDefinition):
                activities.append(value)
            elif isinstance(value, type):
                activities.extend(v for v in vars(value).values() if isinstance(v, BaseDefinition))
            elif isinstance(value, Registry):
                activities.extend(value._activities.values())
                for workflow in value._workflows.values():
                    found.setdefault(("child", workflow.name), workflow.run_signature.return_type)
            for activity in activities:
                found.setdefault(("activity", activity.name), _return_type(activity))
    return found


def watch_call_sites() -> dict[tuple[str, str], Any]:
    """The type each call site decodes a result into, by ("activity" | "child", name), as calls run."""
    from cadence._internal.workflow.context import Context

    seen: dict[tuple[str, str], Any] = {}
    activity, child = Context.execute_activity, Context.start_child_workflow

    async def execute_activity(self: Any, name: str, result_type: Any, *args: Any, **kwargs: Any) -> Any:
        seen[("activity", name)] = result_type
        return await activity(self, name, result_type, *args, **kwargs)

    async def start_child_workflow(self: Any, name: str, result_type: Any, *args: Any, **kwargs: Any) -> Any:
        seen[("child", name)] = result_type
        return await child(self, name, result_type, *args, **kwargs)

    Context.execute_activity = execute_activity
    Context.start_child_workflow = start_child_workflow
    return seen


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def signature_keys(events: list[Any]) -> list[str]:
    """A running digest per prefix of the events' kinds and names: equal digests, equal prefixes."""
    digest, keys = hashlib.sha256(), []
    for event in events:
        which = event.WhichOneof("attributes") or ""
        name = server.command_name(event) if which in runner.COMMAND_EVENTS else ""
        if which == "workflow_execution_signaled_event_attributes":
            name = event.workflow_execution_signaled_event_attributes.signal_name
        digest.update(f"{which}/{name};".encode())
        keys.append(digest.copy().hexdigest())
    return keys


@dataclasses.dataclass(frozen=True)
class Variant:
    label: str
    flipped: bool = False
    signals: bool = False
    fails: tuple[tuple[str, int], ...] = ()


@dataclasses.dataclass
class Run:
    variant: Variant
    events: list[Any]
    points: list[tuple[int, str]]  # (prefix length, what the execution waits on there)
    commands: set[str]
    calls: list[tuple[str, int]]  # activity calls reached, in order: (name, k-th call of it)
    cut: bool


class Workflow:
    """Explore one base workflow within the budget; returns the executions it ran."""

    def __init__(self, driver: Driver, type_name_: str, definition: Any) -> None:
        self.driver, self.type, self.definition = driver, type_name_, definition
        self.reported: set[str] = set()

    def error(self, message: str) -> None:
        if message not in self.reported:
            self.reported.add(message)
            self.driver.emit({"kind": "error", "type": self.type, "message": message[: shared.MESSAGE_LIMIT]})

    def value(self, hint: Any, flipped: bool, what: str) -> Any:
        try:
            return self.driver.values.get(hint, flipped)
        except values.Unbuildable as exc:
            self.error(f"{what}: {exc}; null used instead")
            return None

    def arguments(self, params: list[tuple[str, Any, bool, Any]], flipped: bool, what: str) -> list[Any]:
        args = []
        for name, hint, has_default, default in params:
            if hint is None and has_default:
                args.append(default)
            else:
                args.append(self.value(hint, flipped, f"{what} parameter {name}"))
        return args

    def signals(self) -> list[tuple[str, list[Any]]]:
        out = []
        for name, signal in sorted(self.definition.signals.items()):
            params = []
            try:
                hints = typing.get_type_hints(signal.wrapped)
                for p in list(inspect.signature(signal.wrapped).parameters.values()):
                    if p.name != "self":
                        default = p.default is not inspect.Parameter.empty
                        params.append((p.name, hints.get(p.name), default, p.default))
            except Exception as exc:
                self.error(f"signal {name}: its parameters cannot be read ({type(exc).__name__})")
            out.append((name, self.arguments(params, False, f"signal {name}")))
        return out

    def outcome(self, variant: Variant) -> Callable[[str, str, int], Any]:
        def outcome(kind: str, name: str, n: int) -> Any:
            if kind == "activity" and (name, n) in variant.fails:
                return server.Failed(FAILURE_REASON)
            hint = self.driver.result_type(kind, name)
            return self.value(hint, variant.flipped, f"{kind} {name} result")

        return outcome

    def execute(self, variant: Variant) -> Run:
        driver = self.driver
        params = [
            (p.name, p.type_hint, p.has_default, p.default_value)
            for p in self.definition.run_signature.params
        ]
        args = self.arguments(params, variant.flipped, "workflow input")
        signals = self.signals() if variant.signals else []
        execution = server.Server(
            driver.sdk,
            self.definition,
            args,
            outcome=self.outcome(variant),
            workflow_id=f"synthesized-{slug(self.type)}-{slug(variant.label)}",
            run_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"inflight-guard/{self.type}/{variant.label}")),
            domain="inflight-guard",
            task_list="inflight-guard-synthesized",
            identity=IDENTITY,
        )
        points: list[tuple[int, str]] = []
        commands: set[str] = set()
        opened_total, delivered_at, cut = 0, -1, False
        while True:
            if time.monotonic() > driver.deadline:
                cut = True
                break
            try:
                opened = execution.decide()
            except Exception as exc:  # a workflow task failure: a server would retry it forever
                where = shared._import_error(exc, driver.roots)
                place = f" at {where['path']}:{where['line']}" if where["path"] else ""
                self.error(f"variant {variant.label}: a decision task failed ({type(exc).__name__}{place})")
                break
            opened_total += len(opened)
            commands.update(
                server.command_name(e) for e in opened if e.WhichOneof("attributes") in runner.COMMAND_EVENTS
            )
            if execution.closed:
                break
            points.append((len(execution.events), ", ".join(execution.waiting_on()) or "signal"))
            if len(execution.events) >= driver.max_events:
                cut = True
                break
            stuck = not execution.pending
            if signals and (delivered_at < 0 or (stuck and opened_total > delivered_at)):
                for name, signal_args in signals:
                    execution.signal(name, signal_args)
                delivered_at = opened_total
                continue
            if not execution.resolve():
                break  # waits on a signal that never comes
        calls: list[tuple[str, int]] = []
        seen: dict[str, int] = {}
        for event in execution.events:
            if event.WhichOneof("attributes") == "activity_task_scheduled_event_attributes":
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                seen[name] = seen.get(name, 0) + 1
                calls.append((name, seen[name]))
        return Run(variant, execution.events, points, commands, calls, cut)

    def explore(self) -> tuple[list[Run], bool]:
        """Run variants breadth-first within the budget; (runs, whether a budget cut exploration).

        A failure variant keeps the values (and signals) of the execution that reached the call,
        so a call only flipped results reach is failed on the flipped path.
        """
        queue = [Variant("minimal"), Variant("flipped", flipped=True)]
        if self.definition.signals:
            queue.append(Variant("signals", signals=True))
        later: list[Variant] = []  # failing a later call of an activity already failed once
        tried = {v.fails for v in queue}
        runs: list[Run] = []
        while (
            (queue or later)
            and len(runs) < self.driver.executions
            and time.monotonic() <= self.driver.deadline
        ):
            run = self.execute((queue or later).pop(0))
            runs.append(run)
            failed = [i for i, call in enumerate(run.calls) if call in run.variant.fails]
            # Only calls past the last failure are new: failing an earlier one is a variant of its own.
            for call in run.calls[failed[-1] + 1 if failed else 0 :]:
                fails = (*run.variant.fails, call)
                if fails in tried:
                    continue
                tried.add(fails)
                modes = [
                    m for m, on in (("flipped", run.variant.flipped), ("signals", run.variant.signals)) if on
                ]
                label = " ".join([*modes, "fail " + "+".join(f"{name}#{k}" for name, k in fails)])
                (queue if call[1] == 1 else later).append(
                    dataclasses.replace(run.variant, label=label, fails=fails)
                )
        return runs, bool(queue or later) or any(r.cut for r in runs)


def select(groups: list[list[Any]], limit: int) -> list[Any]:
    """Up to `limit` items: each group's in bisection order (first, last, middle, ...), round-robin."""
    orders = [list(_bisection(len(g))) for g in groups]
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < limit and any(orders):
        for g, order in enumerate(orders):
            if order and len(chosen) < limit:
                chosen.add((g, order.pop(0)))
    return [item for g, group in enumerate(groups) for i, item in enumerate(group) if (g, i) in chosen]


def _bisection(n: int) -> Iterator[int]:
    if n == 0:
        return
    yield 0
    if n > 1:
        yield n - 1
    spans = [(0, n - 1)]
    while spans:
        following = []
        for lo, hi in spans:
            if hi - lo > 1:
                mid = (lo + hi) // 2
                yield mid
                following += [(lo, mid), (mid, hi)]
        spans = following


class Driver:
    def __init__(self, config: dict[str, Any], out: Any) -> None:
        self.out = out
        self.config = config
        budget: dict[str, Any] = {key: config.get(key) for key in DEFAULTS}
        for key, value in budget.items():
            if value is None:
                budget[key] = DEFAULTS[key]
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise CannotStart(f"the synthesis config's {key} is not a number of at least 0")
        self.executions, self.histories = int(budget["executions"]), int(budget["histories"])
        self.max_events = int(budget["max_events"])
        self.deadline = time.monotonic() + float(budget["seconds"])
        self.folder = os.path.abspath(str(config["out"]))
        self.roots = [os.path.join(os.path.realpath(p), "") for p in [*config["paths"], os.getcwd()]]
        try:
            self.adapter = runner.Adapter()
            self.sdk = server.Sdk()
        except (RuntimeError, ImportError) as exc:
            raise CannotStart(str(exc).splitlines()[0]) from None
        converter = self.sdk.converter()

        def encodes(hint: Any, value: Any) -> bool:
            try:
                converter.from_data(converter.to_data([value]), [hint])
            except Exception:
                return False
            return True

        try:
            home = config.get("hypothesis_home")
            self.values = values.Values(encodes, home if isinstance(home, str) else None)
        except ImportError as exc:
            raise CannotStart(
                f"synthesis needs hypothesis in this interpreter ({sys.executable}): "
                f"pip install hypothesis ({type(exc).__name__})"
            ) from None
        self.call_sites = watch_call_sites()
        self.declared: dict[tuple[str, str], Any] = {}
        self.folders: set[str] = set()

    def emit(self, obj: dict[str, Any]) -> None:
        shared._emit(self.out, obj)

    def result_type(self, kind: str, name: str) -> Any:
        hint = self.declared.get((kind, name))
        return (
            self.call_sites.get((kind, name)) if hint in values.NOTHING and hint is not type(None) else hint
        )

    def run(self) -> None:
        self.emit(
            {
                "kind": "ready",
                "sdk": f"cadence-python-client {self.adapter.version}",
                "python": sys.version.split()[0],
            }
        )
        for p in reversed(self.config["paths"]):
            if p not in sys.path:
                sys.path.insert(0, p)
        classes, errors = shared._load_workflows(self.config)
        for e in errors:
            place = f"{e['path']}:{e['line']}: " if e.get("path") and e.get("line") else ""
            self.emit(
                {
                    "kind": "error",
                    "type": e["type"],
                    "message": f"{place}{e['message']}"[: shared.MESSAGE_LIMIT],
                }
            )
        self.declared = declared_results(self.roots)
        for wf in self.config["workflows"]:
            name = wf["type"]
            runs: list[Run] = []
            truncated = time.monotonic() > self.deadline
            if name in classes and not truncated:
                try:
                    definition = self.adapter.define(classes[name], name)
                except Exception as exc:  # the SDK refuses the class: a worker would not register it
                    message = f"{type(exc).__name__}: {exc}".splitlines()[0]
                    self.emit({"kind": "error", "type": name, "message": message[: shared.MESSAGE_LIMIT]})
                else:
                    workflow = Workflow(self, name, definition)
                    runs, truncated = workflow.explore()
                    truncated = self.write(workflow, runs) or truncated
            commands = sorted({c for r in runs for c in r.commands})
            self.emit(
                {
                    "kind": "reached",
                    "type": name,
                    "executions": len(runs),
                    "commands": commands,
                    "variants": [r.variant.label for r in runs],
                    "truncated": truncated,
                }
            )

    def write(self, workflow: Workflow, runs: list[Run]) -> bool:
        """Write each distinct in-flight prefix (up to the budget); True when some were dropped."""
        from google.protobuf import json_format

        seen: set[str] = set()
        groups: list[list[tuple[Run, int, str]]] = []
        for run in runs:
            keys = signature_keys(run.events)
            group = []
            for length, point in run.points:
                if keys[length - 1] not in seen:
                    seen.add(keys[length - 1])
                    group.append((run, length, point))
            groups.append(group)
        kept = select(groups, self.histories)
        folder = self._folder(workflow.type)
        for run, length, point in kept:
            history = self.sdk.history.History(events=run.events[:length])
            path = os.path.join(folder, f"{slug(run.variant.label)}@{length}.json")
            try:
                os.makedirs(folder, exist_ok=True)
                with open(path, "w", encoding="utf-8") as fh:
                    json.dump(json_format.MessageToDict(history), fh)
            except OSError as exc:
                workflow.error(f"cannot write {path}: {exc.strerror}")
                return True
            self.emit(
                {
                    "kind": "history",
                    "type": workflow.type,
                    "file": path,
                    "variant": run.variant.label,
                    "event_id": length,
                    "point": point,
                    "open": True,
                }
            )
        return len(kept) < sum(len(g) for g in groups)

    def _folder(self, type_name_: str) -> str:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", type_name_).strip(".") or "workflow"
        name, n = base, 1
        while name in self.folders:
            n += 1
            name = f"{base}-{n}"
        self.folders.add(name)
        return os.path.join(self.folder, name)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # The protocol owns the real stdout; anything the user's code prints goes to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.disable(logging.CRITICAL)  # the SDK logs every failed decision task with its traceback
    try:
        if len(args) != 1:
            raise CannotStart("usage: synth_driver.py CONFIG.json")
        try:
            with open(args[0], encoding="utf-8") as fh:
                config = json.load(fh)
            if not isinstance(config, dict) or not isinstance(config.get("workflows"), list):
                raise ValueError("expected an object with a workflows list")
            config.setdefault("paths", [])
            config.setdefault("out", "synthesized")
        except (OSError, ValueError) as exc:
            raise CannotStart(f"cannot read the synthesis config {args[0]}: {exc}") from None
        driver = Driver(config, out)
    except CannotStart as exc:
        shared._emit(out, {"kind": "error", "type": None, "message": str(exc)[: shared.MESSAGE_LIMIT]})
        out.flush()
        return 2
    try:
        driver.run()
    except Exception as exc:  # a bug of this driver: named, never a traceback with the user's data
        driver.emit({"kind": "error", "type": None, "message": f"synthesis stopped: {type(exc).__name__}"})
    driver.emit({"kind": "done"})
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
