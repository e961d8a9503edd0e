"""Record Cadence histories by running workflows on the SDK's own decision engine, scripted.

The server's part (the events a server appends for each decision the real `WorkflowEngine`
returns, then the next decision task on the whole history) is the product's:
bot/engines/cadence/server.py, which the synthesis driver runs with values built from types.
Here the outcomes are scripted (`results`: an activity's or child's result by name, default
"<name>-done"; a callable is called; a `Failed` fails the activity) and signals arrive before a
given decision task: these histories are the tests' truth, not the synthesizer's. The histories
are what `cadence workflow show` would export, as protobuf `History` messages (and, through
`to_thrift_json`, in the CLI's Thrift-JSON shape).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cadence.api.v1 import history_pb2
from cadence.workflow import WorkflowDefinition
from google.protobuf import json_format

ENGINE = Path(__file__).resolve().parents[1] / "bot" / "engines" / "cadence"


def _load(file: str, name: str) -> Any:
    """A standalone script of the Cadence engine (run by path in the user's interpreter)."""
    spec = importlib.util.spec_from_file_location(name, ENGINE / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SERVER = _load("server.py", "cadence_server")
SDK = SERVER.Sdk()
START = SERVER.START
ActivityFailure = SERVER.Failed


def scripted(results: Mapping[str, Any] | None) -> Callable[[str, str, int], Any]:
    """The outcome of every activity and child: its scripted result, "<name>-done" by default."""
    script = results or {}

    def outcome(kind: str, name: str, n: int) -> Any:
        value = script.get(name, f"{name}-done")
        return value() if callable(value) else value

    return outcome


class Recorder:
    """One execution with scripted outcomes, signals before given decision tasks."""

    def __init__(
        self,
        definition: WorkflowDefinition[Any],
        args: Sequence[Any] = (),
        *,
        results: Mapping[str, Any] | None = None,
        workflow_id: str = "wf-1",
        run_id: str = "run-1",
        signals: Mapping[int, Sequence[tuple[str, Sequence[Any]]]] | None = None,
    ) -> None:
        self.signals = signals or {}
        self.server = SERVER.Server(
            SDK, definition, args, outcome=scripted(results), workflow_id=workflow_id, run_id=run_id
        )

    def run(self, *, decisions: int | None = None) -> history_pb2.History:
        """Run decision tasks until the workflow closes (or `decisions` of them ran: in flight)."""
        done = 0
        while decisions is None or done < decisions:
            for name, args in self.signals.get(done, ()):
                self.server.signal(name, args)
            self.server.decide()
            done += 1
            if self.server.closed or (decisions is not None and done >= decisions):
                break
            if not self.server.resolve() and not self.signals.get(done):
                break  # waiting on something that never comes
        history: history_pb2.History = self.server.history()
        return history


def load_runner() -> Any:
    """The Cadence replay runner (a standalone script: run by path in the user's interpreter)."""
    return _load("runner.py", "cadence_runner")


def record(
    definition: WorkflowDefinition[Any],
    args: Sequence[Any] = (),
    *,
    decisions: int | None = None,
    **kwargs: Any,
) -> history_pb2.History:
    """Run `definition` on the SDK's engine and return the history a server would hold."""
    return Recorder(definition, args, **kwargs).run(decisions=decisions)


def to_proto_json(history: history_pb2.History) -> dict[str, Any]:
    """The SDK's protobuf JSON of a history (`{"events": [...]}`, lowerCamel names)."""
    return json_format.MessageToDict(history)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _pascal(field: str) -> str:
    return "".join(part.capitalize() for part in field.split("_"))


def _camel(field: str) -> str:
    pascal = _pascal(field)
    return pascal[:1].lower() + pascal[1:]


def _thrift_value(field: Any, value: Any, out: dict[str, Any]) -> None:
    """Write one proto field the way the Go CLI's Thrift JSON writes it."""
    name = _camel(field.name)
    message = field.message_type.name if field.message_type is not None else None
    if message == "Duration":
        out[f"{name}Seconds"] = int(value.ToTimedelta().total_seconds())
    elif message == "Payload":
        out[name] = base64.b64encode(bytes(value.data)).decode()
    elif message == "Timestamp":
        out[name] = value.ToNanoseconds()
    elif message == "Failure":  # Thrift has reason + details beside each other
        out["reason"] = value.reason
        out["details"] = base64.b64encode(bytes(value.details)).decode()
    elif message is not None and field.message_type.GetOptions().map_entry:
        out[name] = {
            key: base64.b64encode(bytes(item.data)).decode() if hasattr(item, "data") else item
            for key, item in value.items()
        }
    elif field.enum_type is not None:
        enum = field.enum_type.values_by_number[value].name
        prefix = _snake(field.enum_type.name).upper() + "_"
        out[name] = enum[len(prefix) :] if enum.startswith(prefix) else enum
    elif message is not None:
        out[name] = _thrift_message(value)
    elif isinstance(value, bytes):
        out[name] = base64.b64encode(value).decode()
    else:
        out[name] = value


def _thrift_message(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        _thrift_value(field, value, out)
    return out


def to_thrift_json(history: history_pb2.History) -> list[dict[str, Any]]:
    """The Cadence CLI's export (`cadence workflow show --of h.json`): an array of Thrift-JSON events."""
    events: list[dict[str, Any]] = []
    for event in history.events:
        which = event.WhichOneof("attributes")
        assert which is not None
        kind = _pascal(which.removesuffix("_event_attributes"))
        events.append(
            {
                "eventId": event.event_id,
                "timestamp": event.event_time.ToNanoseconds(),
                "eventType": kind,
                "version": -24,
                "taskId": 1048576 + event.event_id,
                f"{_camel(which)}": _thrift_message(getattr(event, which)),
            }
        )
    return events


def write(history: history_pb2.History, path: Any, *, fmt: str = "thrift") -> None:
    """Write a history as the CLI (`thrift`) or the SDK's protobuf JSON (`proto`) exports it."""
    data: Any = to_thrift_json(history) if fmt == "thrift" else to_proto_json(history)
    with open(path, "w", encoding="utf-8") as fh:  # noqa: PTH123
        json.dump(data, fh, indent=1)


Factory = Callable[[], WorkflowDefinition[Any]]
