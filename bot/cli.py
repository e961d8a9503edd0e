"""`inflight-guard`: the command line. Thin: it parses options, runs the pipeline, writes output."""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import shutil
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot import __version__
from bot.config import Config
from bot.errors import UserError
from bot.histories import ReplayLog, ReplayOptions, Shard, default_cache
from bot.model import ReplayResult, Report, VerdictLevel
from bot.pipeline import CheckOptions, findings_by_severity, run_check
from bot.policy import Policy, builtin_packs
from bot.report import render

app = typer.Typer(
    name="inflight-guard",
    help="Is this workflow change safe for the executions already in flight?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT = {
    VerdictLevel.SAFE: 0,
    VerdictLevel.SAFE_WITH_GATES: 0,
    VerdictLevel.BREAKING: 1,
    VerdictLevel.ERROR: 2,
}

P = ParamSpec("P")
R = TypeVar("R")


class SynthesizeMode(StrEnum):
    AUTO = "auto"
    ALWAYS = "always"
    OFF = "off"


class Format(StrEnum):
    markdown = "markdown"
    json = "json"
    sarif = "sarif"
    github = "github"


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn user errors into one line and exit 2; never show a traceback unless asked to."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            err.print(f"inflight-guard: error: {exc.message}", markup=False)
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("INFLIGHT_GUARD_DEBUG"):
                traceback.print_exc()
            err.print(
                f"inflight-guard: internal error: {type(exc).__name__}: {exc} "
                "(set INFLIGHT_GUARD_DEBUG=1 for a traceback, and please report it)",
                markup=False,
            )
            raise typer.Exit(2) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"inflight-guard {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Is this workflow change safe for the executions already in flight?

    Exit codes: 0 safe (or safe with gates), 1 breaking, 2 error.
    """


def _summary(report: Report) -> str:
    counts = findings_by_severity(report.findings)
    parts = [f"{n} {sev}" for sev, n in sorted(counts.items())] or ["no findings"]
    changed = sum(1 for d in report.definitions if d.status != "unchanged")
    return (
        f"inflight-guard: {report.verdict.level.value} — {', '.join(parts)}; "
        f"{changed} changed definition(s) of {len(report.definitions)} inspected"
    )


def _emit(report: Report, fmt: Format, output: Path | None) -> None:
    text = render(report, fmt.value)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{output}: cannot write the report ({exc.strerror or exc})") from None


ReplayHelp = "Replay"


@app.command()
@guarded
def check(
    repo: Annotated[
        Path, typer.Option("--repo", help="Repository to check (any folder inside it).")
    ] = Path(),
    base: Annotated[
        str | None,
        typer.Option(
            "--base", help="Base ref. Default: merge-base of head with origin/HEAD, else main, else master."
        ),
    ] = None,
    head: Annotated[
        str, typer.Option("--head", help="Head ref (read from git objects, not the work tree).")
    ] = "HEAD",
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.markdown,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report here, not stdout.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Config file. Default: .github/inflight-guard.yml from the base branch."
        ),
    ] = None,
    histories: Annotated[
        list[str] | None,
        typer.Option(
            "--histories",
            help="Exported histories to replay against head: a folder, a glob, s3://BUCKET/PREFIX or "
            "temporal://HOST:PORT/NAMESPACE?query=...; repeatable.",
            rich_help_panel=ReplayHelp,
        ),
    ] = None,
    python: Annotated[
        str | None,
        typer.Option(
            "--python",
            help="Interpreter with your workers' dependencies, used for replay. "
            "Default: the first `python` on PATH that has the SDK (temporalio, cadence, airflow), else inflight-guard's own.",
            rich_help_panel=ReplayHelp,
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Replay processes. Default: the number of CPUs.",
            rich_help_panel=ReplayHelp,
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache",
            help="Cache of parsed histories (binary protobuf, by content hash). Default: ~/.cache/inflight-guard.",
            rich_help_panel=ReplayHelp,
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Parse every history afresh.", rich_help_panel=ReplayHelp)
    ] = False,
    replay_all: Annotated[
        bool,
        typer.Option(
            "--replay-all",
            help="Replay histories of every workflow in head, not only those the change affects.",
            rich_help_panel=ReplayHelp,
        ),
    ] = False,
    replay_timeout: Annotated[
        float,
        typer.Option(
            "--replay-timeout",
            min=0.1,
            help="Seconds one history may take to replay.",
            rich_help_panel=ReplayHelp,
        ),
    ] = 60.0,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Replay only shard I of N of the histories (I/N); join the reports with `inflight-guard merge`.",
            rich_help_panel=ReplayHelp,
        ),
    ] = None,
    temporal_address: Annotated[
        str | None,
        typer.Option(
            "--temporal-address",
            help="Temporal frontend HOST:PORT: count running executions of each changed type "
            "(credentials from TEMPORAL_API_KEY / TEMPORAL_TLS_*).",
            rich_help_panel=ReplayHelp,
        ),
    ] = None,
    synthesize: Annotated[
        SynthesizeMode | None,
        typer.Option(
            "--synthesize",
            help="Record in-flight executions of the base code on the engine and replay them on head: "
            "`auto` for changed Temporal/Cadence workflows no production history covers, `always` for all, "
            "`off`. Default: `synthesis.mode` (auto).",
            rich_help_panel=ReplayHelp,
        ),
    ] = None,
    synthesis_budget: Annotated[
        int | None,
        typer.Option(
            "--synthesis-budget",
            min=1,
            max=200,
            help="Executions recorded per changed workflow (branches explored). Default: `synthesis.executions` (12).",
            rich_help_panel=ReplayHelp,
        ),
    ] = None,
    rollback: Annotated[
        bool,
        typer.Option(
            "--rollback",
            help="Judge a revert instead: the sides swap, so histories made by head (exported with "
            "--histories, or synthesized from head) replay on base. Exit 1 when base cannot take over "
            "executions head has run.",
            rich_help_panel=ReplayHelp,
        ),
    ] = False,
    replay_log: Annotated[
        Path | None,
        typer.Option(
            "--replay-log",
            help="Write the full failure text of each history that fails replay here, one JSON line each "
            "(it may quote data derived from payloads: reports never show it). Keep the file local.",
            rich_help_panel=ReplayHelp,
        ),
    ] = None,
) -> None:
    """Check the workflow definitions changed between base and head.

    Exit codes: 0 safe or safe_with_gates, 1 breaking, 2 error (bad input, or the tool could not decide).
    """
    replay = ReplayOptions(
        sources=histories or (),
        python=python,
        cache=None if no_cache else (cache or default_cache()),
        replay_all=replay_all,
        timeout=replay_timeout,
        shard=Shard.parse(shard) if shard else None,
    )
    if jobs:
        replay.jobs = jobs
    options = CheckOptions(
        repo=repo,
        base=base,
        head=head,
        config=config,
        replay=replay,
        temporal_address=temporal_address,
        synthesize=synthesize.value if synthesize else None,
        synthesis_budget=synthesis_budget,
        rollback=rollback,
    )
    replay.log = ReplayLog(replay_log) if replay_log else None
    try:
        with _progress(bool(histories)) as progress:
            replay.progress = progress
            report = run_check(options)
    finally:
        if replay.log is not None:
            replay.log.close()
    _emit(report, fmt, output)
    if report.replay_summary is not None:
        err.print(_replay_line(report), markup=False)
    if report.synthesis is not None:
        err.print(_synthesis_line(report), markup=False)
    err.print(_summary(report), markup=False)
    raise typer.Exit(EXIT[report.verdict.level])


@contextlib.contextmanager
def _progress(active: bool) -> Iterator[Callable[[ReplayResult], None] | None]:
    """A Rich progress line on a terminal while histories replay; nothing otherwise."""
    if not active or not err.is_terminal:
        yield None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("replaying histories"),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failing"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("replay", total=None, failed=0)
        failed = 0
        lock = threading.Lock()

        def advance(result: ReplayResult) -> None:
            nonlocal failed
            with lock:
                failed += result.failed
                bar.update(task, advance=1, failed=failed)

        yield advance


def _synthesis_line(report: Report) -> str:
    s = report.synthesis
    assert s is not None
    if not s.workflows:
        return "synthesis: " + ("; ".join(s.skipped) or "nothing recorded")
    histories = sum(w.histories for w in s.workflows)
    failed = sum(w.failed for w in s.workflows)
    return (
        f"inflight-guard: synthesized from base: {histories} in-flight histories of {len(s.workflows)} workflows "
        f"in {s.seconds:.1f} s, {failed} failing on head"
    )


def _replay_line(report: Report) -> str:
    s = report.replay_summary
    assert s is not None
    counts = ", ".join(f"{n} {k}" for k, n in sorted(s.counts.items())) or "no histories found"
    production = [r for r in report.replay if not r.synthesized]
    rate = f" ({len(production) / s.seconds:.1f}/s)" if s.seconds and production else ""
    return f"inflight-guard: replay: {len(production)} histories in {s.seconds:.1f} s{rate}: {counts}"


@app.command("merge")
@guarded
def merge_reports(
    reports: Annotated[
        list[Path], typer.Argument(metavar="REPORT...", help="JSON reports of `check --shard i/n` runs.")
    ],
    repo: Annotated[Path, typer.Option("--repo", help="The repository the reports are about.")] = Path(),
    config: Annotated[
        Path | None, typer.Option("--config", help="Config file, as given to the shard runs.")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.markdown,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report here, not stdout.")
    ] = None,
) -> None:
    """Join the reports of sharded replay runs into one report (same base and head), and judge it again.

    Exit codes as for `check`.
    """
    from bot.merge import load_shards

    shards = load_shards(reports)
    options = CheckOptions(
        repo=repo,
        base=shards.base,
        head=shards.head,
        config=config,
        replay=ReplayOptions(sources=shards.sources),
        recorded=(shards.results, shards.summary),
    )
    report = run_check(options)
    _emit(report, fmt, output)
    err.print(_replay_line(report), markup=False)
    err.print(_summary(report), markup=False)
    raise typer.Exit(EXIT[report.verdict.level])


class ActionMode(StrEnum):
    all = "all"
    analyze = "analyze"
    publish = "publish"


class FailOn(StrEnum):
    breaking = "breaking"
    risky = "risky"
    never = "never"


@app.command("action")
@guarded
def github_action(
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="INFLIGHT_GUARD_TOKEN", help="GitHub token. Default: GITHUB_TOKEN."),
    ] = None,
    mode: Annotated[
        ActionMode,
        typer.Option(
            "--mode",
            envvar="INFLIGHT_GUARD_MODE",
            help="all: analyse and publish; analyze: no writes (fork-safe); publish: post an uploaded report.",
        ),
    ] = ActionMode.all,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            envvar="INFLIGHT_GUARD_REPORT",
            help="JSON report path (written by analyze, read by publish). Default: $RUNNER_TEMP/inflight-guard/report.json.",
        ),
    ] = None,
    fail_on: Annotated[
        FailOn,
        typer.Option(
            "--fail-on", envvar="INFLIGHT_GUARD_FAIL_ON", help="What fails the status and the step."
        ),
    ] = FailOn.breaking,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", envvar="INFLIGHT_GUARD_CONFIG", help="Config file (default: base branch's)."
        ),
    ] = None,
    histories: Annotated[
        str | None,
        typer.Option(
            "--histories",
            envvar="INFLIGHT_GUARD_HISTORIES",
            help="History sources to replay, separated by newlines or spaces.",
        ),
    ] = None,
    python: Annotated[
        str | None,
        typer.Option(
            "--python", envvar="INFLIGHT_GUARD_PYTHON", help="Interpreter with your workers' dependencies."
        ),
    ] = None,
) -> None:
    """Run as a GitHub Action step: analyse the pull request and publish the comment and status.

    Reads GITHUB_EVENT_NAME, GITHUB_EVENT_PATH, GITHUB_REPOSITORY, GITHUB_API_URL, GITHUB_WORKSPACE,
    GITHUB_OUTPUT, GITHUB_STEP_SUMMARY and RUNNER_TEMP. Exit codes as for `check`, per --fail-on.
    """
    from bot.github.action import run_safely
    from bot.github.env import ActionEnv, ActionOptions

    env = ActionEnv.read(token)
    code = run_safely(
        env,
        ActionOptions(
            mode=mode.value,
            report=report,
            fail_on=fail_on.value,
            config=config,
            histories=(histories or "").split(),
            python=python or None,
        ),
    )
    raise typer.Exit(code)


export_app = typer.Typer(help="Export workflow histories for replay.", no_args_is_help=True)
app.add_typer(export_app, name="export")


class HistoryFormat(StrEnum):
    json = "json"
    binpb = "binpb"


# `export ... --latest`, the same for every engine.
Latest = Annotated[
    bool,
    typer.Option(
        "--latest",
        help="Once the export is complete, write LATEST beside OUT naming it: `check --histories "
        "PARENT/LATEST` then reads this export only.",
    ),
]


@export_app.command("temporal")
@guarded
def export_temporal(
    out: Annotated[str, typer.Option("--out", help="Folder or s3://BUCKET/PREFIX to write histories to.")],
    address: Annotated[
        str, typer.Option("--address", envvar="TEMPORAL_ADDRESS", help="Temporal frontend HOST:PORT.")
    ] = "127.0.0.1:7233",
    namespace: Annotated[
        str, typer.Option("--namespace", envvar="TEMPORAL_NAMESPACE", help="Namespace.")
    ] = "default",
    query: Annotated[
        str,
        typer.Option(
            "--query", help='Visibility query, e.g. \'WorkflowType="Order" AND ExecutionStatus="Running"\'.'
        ),
    ] = "",
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most this many executions (the newest first).")
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option("--sample", min=1, help="A random sample of this many of the matching executions."),
    ] = None,
    fmt: Annotated[
        HistoryFormat, typer.Option("--format", help="json (as `temporal workflow show -o json`) or binpb.")
    ] = HistoryFormat.json,
    latest: Latest = False,
) -> None:
    """Write the histories of matching executions where `check --histories` reads them.

    Credentials come from TEMPORAL_API_KEY, or TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY (files); S3 uses the
    standard AWS credential chain and AWS_ENDPOINT_URL.
    """
    from bot.engines.temporal.export import export

    with _export_progress(sample or limit) as advance:
        written = export(address, namespace, query, limit, sample, out, fmt.value, advance)
    err.print(f"inflight-guard: exported {written} histories to {out}", markup=False)
    _point_latest(out, latest)


@export_app.command("stepfunctions")
@guarded
def export_stepfunctions(
    state_machine_arn: Annotated[
        str,
        typer.Option(
            "--state-machine-arn", help="State machine ARN, or a version (NAME:3) or alias (NAME:prod) ARN."
        ),
    ],
    out: Annotated[str, typer.Option("--out", help="Folder or s3://BUCKET/PREFIX to write histories to.")],
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED or PENDING_REDRIVE; repeat for several "
            "(default: every status).",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most this many executions (the newest first).")
    ] = None,
    latest: Latest = False,
) -> None:
    """Write the histories of a Standard state machine's executions, one JSON file each.

    OUT/NAME/EXECUTION.json holds the `aws stepfunctions get-execution-history` events and the
    DescribeExecution fields. AWS: the standard credential chain, AWS_REGION (else the ARN's region),
    AWS_ENDPOINT_URL.
    """
    from bot.engines.stepfunctions.export import export

    with _export_progress(limit) as advance:
        written = export(state_machine_arn, status or [], limit, out, advance)
    err.print(f"inflight-guard: exported {written} histories to {out}", markup=False)
    _point_latest(out, latest)


@export_app.command("airflow")
@guarded
def export_airflow(
    url: Annotated[
        str,
        typer.Option(
            "--url", envvar="AIRFLOW_URL", help="Airflow base URL, e.g. https://airflow.example.com."
        ),
    ],
    out: Annotated[str, typer.Option("--out", help="Folder or s3://BUCKET/PREFIX to write the exports to.")],
    dag_id: Annotated[
        list[str] | None,
        typer.Option(
            "--dag-id", metavar="DAG_ID", help="Only this DAG; repeat for several (default: every DAG)."
        ),
    ] = None,
    api: Annotated[
        str, typer.Option("--api", help="REST API: v2 (Airflow 3), v1 (Airflow 2) or auto.")
    ] = "auto",
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state", metavar="STATE", help="Run states to export; repeat (default: running, queued)."
        ),
    ] = None,
    latest: Latest = False,
) -> None:
    """Write running DagRuns and their task instances where `check --histories` reads them.

    OUT/DAG_ID.json holds `{"dag_runs": [...], "task_instances": [...]}` as the REST API returns them,
    without run conf, notes or rendered fields. Credentials: AIRFLOW_API_TOKEN, or
    AIRFLOW_USERNAME/AIRFLOW_PASSWORD; S3 uses the standard AWS credential chain.
    """
    from bot.engines.airflow.export import export

    if api not in ("auto", "v2", "v1"):
        raise UserError(f"--api {api}: expected v2, v1 or auto")
    with _export_progress(None) as advance:
        written = export(url, api, dag_id or [], out, tuple(state or ("running", "queued")), advance)
    err.print(f"inflight-guard: exported {written} DagRuns to {out}", markup=False)
    _point_latest(out, latest)


def _point_latest(out: str, latest: bool) -> None:
    """`--latest`: the pointer beside OUT names this (complete) export."""
    if latest:
        from bot.histories import write_latest

        pointer = write_latest(out)
        err.print(f"inflight-guard: {pointer} now names {out}", markup=False)


@contextlib.contextmanager
def _export_progress(total: int | None) -> Iterator[Callable[[object], None]]:
    """A progress bar on stderr (when it is a terminal); yields the callback one export advances."""
    with Progress(
        SpinnerColumn(),
        TextColumn("exporting histories"),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("export", total=total)
        yield lambda _item: bar.update(task, advance=1)


def _policy() -> Policy:
    return Policy(builtin_packs(), Config())


@app.command("rules")
@guarded
def list_rules(
    engine: Annotated[str | None, typer.Option("--engine", help="Only this engine's rules.")] = None,
) -> None:
    """List every rule: id, slug, severity and title (and what it matches, on a wide terminal)."""
    packs = builtin_packs()
    known = sorted({p.engine for p in packs})
    if engine and engine not in known:
        raise UserError(f"no engine '{engine}': one of {', '.join(known)}")
    console = Console(soft_wrap=False)
    wide = console.width >= 120
    table = Table(title="inflight-guard rules", show_lines=False)
    table.add_column("ID", no_wrap=True)
    table.add_column("Severity", no_wrap=True)
    table.add_column("Slug", no_wrap=True, max_width=32, overflow="ellipsis")
    table.add_column("Title", ratio=1, overflow="fold")
    if wide:
        table.add_column("Matches", overflow="fold")
    for pack in packs:
        if engine and pack.engine != engine:
            continue
        for rule in pack.rules:
            row = [rule.id, rule.severity.value, rule.slug, rule.title]
            table.add_row(*row, *([", ".join(rule.match)] if wide else []))
    console.print(table)


@app.command()
@guarded
def explain(
    rule_id: Annotated[str, typer.Argument(metavar="ID", help="Rule id or slug, e.g. TMP101.")],
) -> None:
    """Explain one rule: what it catches, why it matters, how to fix it."""
    policy = _policy()
    rule = policy.find(rule_id)
    if rule is None:
        keys = [k for r in policy.all_rules for k in (r.id, r.slug)]
        close = difflib.get_close_matches(rule_id, keys, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (see `inflight-guard rules`)"
        raise UserError(f"no rule '{rule_id}'{hint}")
    from bot.docs import rule_markdown

    text = rule_markdown(rule)
    if sys.stdout.isatty():
        Console().print(Markdown(text))
    else:
        sys.stdout.write(text)


@app.command()
@guarded
def demo(
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the scratch repository and print its path.")
    ] = False,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.markdown,
) -> None:
    """Run the check on a bundled example: an order workflow that gains an ungated fraud check.

    The example's recorded histories (one completed, two in flight) are replayed against its head,
    and in-flight executions synthesized from its base code on a local Temporal dev server are
    replayed beside them (`--synthesize always`).
    """
    from bot.demo import BRANCH, HISTORIES, build_repo

    scratch = Path(tempfile.mkdtemp(prefix="inflight-guard-demo-"))
    try:
        build_repo(scratch / "repo")
        shutil.copytree(HISTORIES, scratch / "histories")
        replay = ReplayOptions(sources=["histories"], cache=None)
        # From the scratch folder, so the report names the histories as a user would (histories/…).
        with _progress(True) as progress, contextlib.chdir(scratch):
            replay.progress = progress
            report = run_check(
                CheckOptions(
                    repo=scratch / "repo", base="main", head=BRANCH, replay=replay, synthesize="always"
                )
            )
        _emit(report, fmt, None)
        err.print(_replay_line(report), markup=False)
        if report.synthesis is not None:
            err.print(_synthesis_line(report), markup=False)
        err.print(_summary(report), markup=False)
        if keep:
            err.print(
                f"demo repository kept at {scratch / 'repo'}, histories at {scratch / 'histories'}",
                markup=False,
            )
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)


@app.command()
@guarded
def schema() -> None:
    """Print the JSON Schema of the JSON report (`--format json`)."""
    from bot.docs import report_schema

    sys.stdout.write(report_schema())


def main() -> None:
    code: int | str | None = 0
    if sys.argv[1:2] == ["action"]:
        from bot.credentials import hide_secrets

        hide_secrets(sys.argv[1:])  # PR code it runs must not find the token in our environment
    try:
        app()
    except SystemExit as exc:
        code = exc.code
    finally:
        from bot.engines.temporal.inflight import client_used

        if client_used():
            # Processes that used the SDK's client sometimes abort at exit: leave without its hooks.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code if isinstance(code, int) else 1)
    sys.exit(code)
