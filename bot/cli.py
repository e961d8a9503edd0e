"""`inflight-guard`: the command line. Thin: it parses options, runs the pipeline, writes output."""

from __future__ import annotations

import difflib
import functools
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from bot import __version__
from bot.config import Config
from bot.errors import UserError
from bot.model import Report, VerdictLevel
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
    histories: Annotated[
        list[str] | None,
        typer.Option("--histories", help="History source (folder, glob, s3://, temporal://); repeatable."),
    ] = None,
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
) -> None:
    """Check the workflow definitions changed between base and head.

    Exit codes: 0 safe or safe_with_gates, 1 breaking, 2 error (bad input, or the tool could not decide).
    """
    report = run_check(
        CheckOptions(repo=repo, base=base, head=head, histories=histories or (), config=config)
    )
    _emit(report, fmt, output)
    err.print(_summary(report), markup=False)
    raise typer.Exit(EXIT[report.verdict.level])


def _policy() -> Policy:
    return Policy(builtin_packs(), Config())


@app.command("rules")
@guarded
def list_rules(
    engine: Annotated[str | None, typer.Option("--engine", help="Only this engine's rules.")] = None,
) -> None:
    """List every rule: id, slug, severity and title."""
    table = Table(title="inflight-guard rules", show_lines=False)
    for column in ("ID", "Slug", "Severity", "Title", "Matches"):
        table.add_column(column, overflow="fold")
    for pack in builtin_packs():
        if engine and pack.engine != engine:
            continue
        for rule in pack.rules:
            table.add_row(rule.id, rule.slug, rule.severity.value, rule.title, ", ".join(rule.match))
    Console(soft_wrap=False).print(table)


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
    """Run the check on a bundled example: an order workflow that gains an ungated fraud check."""
    from bot.demo import BRANCH, build_repo

    scratch = Path(tempfile.mkdtemp(prefix="inflight-guard-demo-"))
    try:
        build_repo(scratch)
        report = run_check(CheckOptions(repo=scratch, base="main", head=BRANCH))
        _emit(report, fmt, None)
        err.print(_summary(report), markup=False)
        if keep:
            err.print(f"demo repository kept at {scratch}", markup=False)
    finally:
        if not keep:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)


@app.command()
@guarded
def schema() -> None:
    """Print the JSON Schema of the JSON report (`--format json`)."""
    from bot.docs import report_schema

    sys.stdout.write(report_schema())


def main() -> None:
    app()
