"""What the Python SDKs' replay runners share: the protocol's output and its `fatal` line (`serve`),
the import of the head's workflow classes, reading an export, and a failure's text redacted.

Standard library only, and no script of its own: each engine's runner.py, run by path in the USER's
interpreter (where inflight-guard need not be installed), loads this file by path from the tree
it sits in. The protocol is told in the Temporal runner's docstring.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import sys
import traceback
from typing import Any

MESSAGE_LIMIT = 400
RAW_LIMIT = 16_000
_READY = False


def _emit(out: Any, obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj, separators=(",", ":")) + "\n")
    out.flush()


def _import_error(exc: BaseException, roots: list[str]) -> dict[str, Any]:
    """Return where an import failed: the deepest frame inside the head tree, or the syntax error."""
    path, line = None, None
    if isinstance(exc, SyntaxError) and exc.filename:
        path, line = exc.filename, exc.lineno
    else:
        for frame in traceback.extract_tb(exc.__traceback__):
            if any(frame.filename.startswith(r) for r in roots):
                path, line = frame.filename, frame.lineno
    message = f"{type(exc).__name__}: {exc}".splitlines()[0][:MESSAGE_LIMIT]
    return {"path": path, "line": line, "message": message}


def _same_file(module: Any, expected: str | None) -> bool:
    found = getattr(module, "__file__", None)
    if not expected or not found:
        return True
    return bool(os.path.realpath(found) == os.path.realpath(expected))


def _load_workflows(config: dict[str, Any]) -> tuple[dict[str, type], list[dict[str, Any]]]:
    """Import each head workflow class; every one that cannot be used is an error with its place."""
    roots = [os.path.join(p, "") for p in config["paths"]]
    classes: dict[str, type] = {}
    errors: list[dict[str, Any]] = []
    for wf in config["workflows"]:
        expected = wf.get("file")
        last: dict[str, Any] | None = {
            "path": expected,
            "line": None,
            "message": "no importable module name for this file (is it inside a package without a source root?)",
        }
        for name in wf["modules"]:
            try:
                module = importlib.import_module(name)
            except ImportError as exc:
                last = _import_error(exc, roots)
                if "relative import" in str(exc) or getattr(exc, "name", None) == name:
                    continue  # imported from the wrong root: try the next candidate name
                break
            except BaseException as exc:
                last = _import_error(exc, roots)
                break
            if not _same_file(module, expected):
                # Another file already answers to this name (two services' `workflows.py`).
                last = {
                    "path": expected,
                    "line": None,
                    "message": f"`{name}` is another file: {module.__file__}",
                }
                continue
            cls = getattr(module, wf["class"], None)
            if cls is None:
                last = {"path": expected, "line": None, "message": f"{name} has no class {wf['class']}"}
                break
            classes[wf["type"]] = cls
            last = None
            break
        if last is not None:
            errors.append({"type": wf["type"], "module": (wf["modules"] or ["?"])[0], **last})
    return classes, errors


def _binary(raw: bytes, history: Any) -> Any:
    """Fill an SDK's `History` message from a binary export; ValueError when it is not one."""
    try:
        history.ParseFromString(raw)
    except Exception as exc:
        raise ValueError(f"neither JSON nor a binary History protobuf ({type(exc).__name__})") from None
    if not history.events:
        raise ValueError("binary file holds no history events")
    return history


def _load_json(raw: bytes) -> Any:
    """Parse an export; ValueError says whether it is truncated or invalid, and where."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        reason = "truncated JSON" if "Expecting" in str(exc) or "Unterminated" in str(exc) else "invalid JSON"
        raise ValueError(f"{reason}{where}") from None


def _payload_strings(message: Any, out: set[str]) -> None:
    """Collect every payload's data (and its JSON leaves) reachable from a proto message."""
    from google.protobuf.message import Message

    if type(message).__name__ == "Payload" and hasattr(message, "data"):
        data = bytes(message.data)
        text = data.decode("utf-8", "replace")
        out.add(text)
        out.add(base64.b64encode(data).decode())
        try:
            stack = [json.loads(text)]
        except ValueError:
            stack = []
        while stack:
            v = stack.pop()
            if isinstance(v, dict):
                stack.extend(v.keys())
                stack.extend(v.values())
            elif isinstance(v, list):
                stack.extend(v)
            elif v is not None and not isinstance(v, bool):
                out.add(str(v))
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if isinstance(value, Message):
            _payload_strings(value, out)
            continue
        items = value.values() if hasattr(value, "items") else value  # a map, or a repeated field
        for item in items:
            if isinstance(item, Message):
                _payload_strings(item, out)


def _secrets(history: Any) -> list[str]:
    """Every payload string of the history, in the forms a message may carry it, longest first."""
    found: set[str] = set()
    _payload_strings(history, found)
    forms: set[str] = set()
    for s in found:
        for piece in (s, *s.splitlines()):
            piece = piece.strip()
            if len(piece) >= 3:
                forms |= {piece, json.dumps(piece)[1:-1], repr(piece)[1:-1]}
    return sorted(forms, key=len, reverse=True)


def _redact(text: str, history: Any) -> str:
    """Return a failure's text without the exact payload strings of its history, shortened.

    Text derived from a payload (upper-cased, sliced, encoded) survives this: the parent never
    shows the result, it only reads fixed-shape facts from it and logs it when asked to.
    """
    for s in _secrets(history):
        text = text.replace(s, "<redacted>")
    if len(text) > RAW_LIMIT:
        text = text[: RAW_LIMIT - 1] + "…"
    return text


def serve(run: Any) -> None:
    """Run `run(config, out)` under the protocol: config from stdin, a `fatal` line on any failure."""
    # Our protocol owns the real stdout; anything user code prints goes to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    code = 0
    try:
        config = json.loads(sys.stdin.readline())
        run(config, out)
    except BaseException as exc:
        try:
            text = f"{type(exc).__name__}: {exc}" if not _READY else type(exc).__name__
            _emit(out, {"kind": "fatal", "message": text[:MESSAGE_LIMIT]})
        except Exception:
            pass
        code = 3
    try:
        out.flush()
        sys.stderr.flush()
    finally:
        # Processes that used the SDK's runtime sometimes abort at exit (PyGILState_Release).
        os._exit(code)
