"""The ``fluxloop`` command line: a thin Click shim over the pytest plugin.

``fluxloop run experiment`` builds a pytest command line and runs it in-process;
``fluxloop init project`` scaffolds a project; ``fluxloop config schema`` prints the
config JSON Schema; ``fluxloop status`` lists the experiments a config's runs left;
``fluxloop doctor`` checks the installation and the config; ``fluxloop generate inputs``
writes the inputs file; ``fluxloop record enable | disable | status`` turns argument
recording on and off in the project's ``.env`` and replay on in simulation.yaml;
``fluxloop merge`` joins the folders of ``--shard K/N`` runs into one experiment;
``fluxloop evaluate experiment DIR`` evaluates a finished run; ``fluxloop parse experiment``,
``fluxloop report`` and ``fluxloop compare`` turn experiment folders into Markdown, one HTML
page and a comparison; ``fluxloop cassettes show | prune`` prints one case's LLM-call cassette
and removes the recordings a run never used; ``fluxloop collector serve`` runs the
collector service and ``fluxloop collector push DIR`` sends the batches a run spooled when
its collector was unreachable. Importing this package stays
cheap: pytest, pydantic and the config models are imported inside the commands that need
them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from ..errors import FluxloopError
from .cassettes_cmd import cassettes_group
from .collector_cmd import collector_group
from .collector_serve_cmd import serve as collector_serve
from .compare_cmd import compare
from .config_cmd import config_schema
from .doctor_cmd import doctor
from .evaluate_cmd import evaluate_group
from .generate_cmd import generate_group
from .init_cmd import init_project
from .merge_cmd import merge
from .parse_cmd import parse_group
from .pytest_args import build_pytest_args
from .record_cmd import record_group
from .report_cmd import report
from .run import EXIT_USAGE_ERROR, run_experiment
from .status_cmd import status_group

__all__ = ["build_pytest_args", "cli", "main"]


class UsageFailure(click.ClickException):
    """A usage or configuration error: ``Error: <message>`` and exit code 4, like pytest's."""

    exit_code = EXIT_USAGE_ERROR


class _Commands(click.Group):
    """The CLI's one boundary for our errors: a :class:`FluxloopError` raised anywhere in a
    command (a bad config, a missing project, an unusable folder) is shown as its message,
    with exit code 4, never as a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FluxloopError as err:
            raise UsageFailure(str(err)) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pytest-fluxloop", prog_name="fluxloop")
def cli() -> None:
    """FluxLoop: simulate users talking to your AI agent, as pytest tests."""


@cli.group("run")
def run_group() -> None:
    """Run simulations."""


@cli.group("init")
def init_group() -> None:
    """Create FluxLoop projects."""


@cli.group("config")
def config_group() -> None:
    """Inspect configuration."""


run_group.add_command(run_experiment)
init_group.add_command(init_project)
config_group.add_command(config_schema)
cli.add_command(status_group)
cli.add_command(doctor)
cli.add_command(generate_group)
cli.add_command(record_group)
cli.add_command(merge)
cli.add_command(evaluate_group)
cli.add_command(parse_group)
cli.add_command(compare)
cli.add_command(report)
cli.add_command(cassettes_group)
collector_group.add_command(collector_serve)
cli.add_command(collector_group)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``fluxloop``); exits with the command's exit code.

    Usage errors (unknown option, bad value) exit with 4 like pytest's, not Click's 2,
    because 2 means "interrupted" in pytest's exit codes, which ``run experiment`` passes on.
    """
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="fluxloop",
            standalone_mode=False,
        )
    except click.UsageError as err:
        err.show()
        sys.exit(EXIT_USAGE_ERROR)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
