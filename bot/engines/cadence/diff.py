"""The Cadence diff vocabulary. The diff itself is the Temporal one (bot/engines/temporal/diff.py):
both SDKs' workflows extract to the same command model; `bot.engines.dialect.CADENCE` names the kinds."""

from __future__ import annotations

VOCABULARY: dict[str, str] = {
    "cadence.replay.failed": "Recorded histories of a workflow type fail replay against head on the SDK's decision engine (grouped by outcome and message); `details.open` is true when one of them is still in flight, `details.explained_by` names the static finding that explains it.",
    "cadence.replay.timeout": "Replay of recorded histories did not finish within `--replay-timeout`.",
    "cadence.replay.import_failed": "The head module of a workflow type failed to import (or the SDK refused the class) in the replay interpreter.",
    "cadence.replay.source_failed": "A history source failed part-way; the location is the source.",
    "cadence.replay.unattributed": "Histories failed before the runner could read their workflow type; they belong to no definition.",
    "cadence.replay.runner_failed": "The replay runner could not start (no cadence-python-client in the interpreter, or an SDK whose internals the adapter does not know).",
    "cadence.workflow.added": "A workflow type is registered in head but not in base.",
    "cadence.workflow.removed": "A workflow type registered in base is gone from head.",
    "cadence.workflow.renamed": "A workflow's registered type name changed (`@reg.workflow(name=...)` or the class name) while its body stayed the same.",
    "cadence.command.inserted": "A decision (activity, child workflow, side effect, upsert, continue-as-new, external signal) was inserted into a decision sequence. `details.at_end` is true when nothing recorded in base follows it.",
    "cadence.command.removed": "A decision was removed from a decision sequence.",
    "cadence.command.reordered": "A decision kept its type but moved relative to the others.",
    "cadence.command.type_changed": "A decision kept its kind but targets another type (activity type, child workflow type, signal name).",
    "cadence.command.kind_changed": "A decision changed kind at the same position (activity → child workflow, ...).",
    "cadence.command.options_changed": "A decision kept its place and type; its options (timeouts, retry policy, task list, timer duration) changed.",
    "cadence.command.condition_changed": "A decision kept its place and type but runs under other conditions (an `if`, a loop, an `except`); `details.structural` when it moved between conditional and unconditional code.",
    "cadence.command.unresolved": "A decision in a changed region whose activity or workflow type is not a literal; `details.change` says what the change would be.",
    "cadence.exit.added": "An early exit (`return`, `raise`, `break`, `continue` or `continue_as_new`, `details.exit`) under `details.test` now comes before decisions base executions make: executions that take it skip decisions their history holds. The location is the `if` holding it; `details.replaced` is true when the decision was already behind as many exits of this kind.",
    "cadence.command.batch_changed": "Two decisions made in one decision task (no await between them: `asyncio.gather`, tasks started before awaiting) are now awaited one after the other (`details.split: true`), or the reverse (`split: false`).",
    "cadence.loop.order_changed": "A loop making decisions walks its items the other way (`reversed()`, `[::-1]`, `sorted(..., reverse=True)`); `details.per_item` says what varies with the item: `type` or `args`.",
    "cadence.value.changed": "A value that decides whether or how often decisions run (a loop bound, a retry count, a continue-as-new threshold, a flag) changed, compared by value; the details are those of `temporal.value.changed` (`constant`, `before`, `after`, `role`, `effect`, `follows`, `changes_recorded`).",
    "cadence.timer.added": "A timer (`workflow.sleep`) was added.",
    "cadence.timer.removed": "A timer was removed.",
    "cadence.version.added": "A `workflow.get_version(change_id, DEFAULT_VERSION, n)` call was added (a new version gate).",
    "cadence.version.min_raised": "A `get_version` call's `min_supported` was raised above `DEFAULT_VERSION`: histories without its marker are refused.",
    "cadence.version.removed": "A `get_version(change_id, ...)` call was removed; `details.previously` says whether it still accepted DEFAULT_VERSION.",
    "cadence.handler.added": "A signal or query handler was added.",
    "cadence.handler.removed": "A signal or query handler was removed; `details.handler_kind` says which.",
    "cadence.nondeterminism.added": "Workflow code gained a non-deterministic call (wall clock, randomness, environment, I/O, threads).",
    "cadence.signature.changed": "The run method's parameters changed incompatibly (removed, retyped, reordered, or added without default).",
    "cadence.signature.extended": "The run method gained a parameter with a default value.",
    "cadence.source.invalid": "A file could not be analysed (syntax error, nested too deeply, not UTF-8, too large).",
}
