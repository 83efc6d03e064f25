"""``fluxloop cassettes show | prune``: read one LLM-call cassette, trim the unused recordings.

The work is in :mod:`pytest_fluxloop.report.cassette_show` and
:mod:`pytest_fluxloop.run.cassette_prune` (imported inside the commands: importing the CLI
stays cheap).
"""

from __future__ import annotations

from pathlib import Path

import click

from .location import location_options

__all__ = ["cassettes_group"]

#: Case ids listed when the one asked for has no cassette.
_LISTED = 20


@click.group("cassettes")
def cassettes_group() -> None:
    """Read and maintain LLM-call cassettes (cassettes/<experiment>/<case_id>.json)."""


def _experiment_folder(config: Path, project: str | None, root: Path) -> Path:
    """The experiment's cassette folder, from the config as ``fluxloop run experiment``
    finds it."""
    from ..artifacts.paths import folder_inside
    from ..config import load_config
    from .pytest_args import resolve_config_path

    cwd = Path.cwd()
    config_path = resolve_config_path(config, project, root, cwd, "fluxloop cassettes show")
    cfg = load_config(config_path)  # ConfigError: exit 4, as a run would
    base = cfg.resolve(cfg.simulation.cassettes.dir)
    return folder_inside(base, cfg.experiment_name, "cassettes.dir", inside="the cassettes folder")


def _case_path(case: str, folder: Path) -> Path:
    """The cassette of case id ``case`` in ``folder``; ConfigError listing the case ids
    there when it has none."""
    from ..artifacts.paths import folder_inside
    from ..errors import ConfigError

    path = folder_inside(folder, f"{case}.json", "case id", inside="the cassette folder")
    if path.is_file():
        return path
    if not folder.is_dir():
        raise ConfigError(
            f"no cassette for case {case!r}: the cassette folder {folder} does not exist "
            "(record with --fluxloop-cassettes record, or give the folder with --dir)"
        )
    names = sorted(p.stem for p in folder.glob("*.json") if p.is_file())
    if not names:
        raise ConfigError(f"no cassette for case {case!r}: {folder} holds no cassettes")
    shown = "\n".join(f"  {name}" for name in names[:_LISTED])
    more = f"\n  ... and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    raise ConfigError(
        f"no cassette for case {case!r} in {folder}; its {len(names)} case id(s):\n{shown}{more}"
    )


@cassettes_group.command("show")
@click.argument("case")
@location_options(
    "Simulation config (finds the experiment's cassette folder); relative to the project "
    "with --project, else to the current directory."
)
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The folder holding the cassettes (<case_id>.json); default: the experiment's "
    "folder under the config's cassettes.dir.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the cassette file as it is (JSON).")
def cassettes_show(
    case: str, config: Path, project: str | None, root: Path, folder: Path | None, as_json: bool
) -> None:
    """Print one case's recorded LLM calls: CASE is a cassette file, or a case id.

    The header gives the experiment, the case, the versions and models it was recorded with;
    each interaction then shows its turn, role, index, provider, endpoint and model, the
    system prompt (shortened), the last user message of the request and the reply.

    Exit codes: 0 shown, 4 no such case (its case ids are listed), a cassette that cannot
    be read, or a config that cannot be found.
    """
    from ..cassettes.files import read_cassette
    from ..errors import ConfigError
    from ..report.cassette_show import describe_cassette

    given = Path(case).expanduser()
    if given.is_file():
        path = given
    elif case.endswith(".json") or "/" in case or "\\" in case:
        raise ConfigError(f"no such cassette file: {given}")
    else:
        if folder is None:
            folder = _experiment_folder(config, project, root)
        path = _case_path(case, folder.expanduser())
    cassette = read_cassette(path)  # CassetteError: exit 4 with its message
    if as_json:
        text = path.read_text(encoding="utf-8")  # read above: UTF-8, a valid cassette
        click.echo(text, nl=not text.endswith("\n"))
        return
    for line in describe_cassette(cassette, path):
        click.echo(line)


@cassettes_group.command("prune")
@click.argument("results_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The experiment's cassette folder (<case_id>.json files); default: the one the "
    "run used (summary.json cassettes.folder).",
)
def cassettes_prune(results_dir: Path, dry_run: bool, folder: Path | None) -> None:
    """Remove the recordings RESULTS_DIR's run never used from its cassettes.

    RESULTS_DIR is an experiment folder of a run made with cassettes (experiments/exp_...).
    For each case that ran without a miss, the recordings it never asked for (its trace's
    cassette.unused_keys) are removed from its cassette: of each key, that many of its last
    recordings. Cases that missed calls are skipped (re-record them with
    --fluxloop-cassettes new), and so is a cassette changed since the run.

    Exit codes: 0 done (or nothing to do), 4 not a results folder of a run with cassettes,
    a cassette that cannot be read or written.
    """
    from ..cassettes.errors import CassetteError
    from ..run.cassette_prune import apply_prune, plan_prune

    plan = plan_prune(results_dir, folder)
    click.echo(
        f"[INFO] Run {plan.results.name} of {plan.experiment} (cassettes {plan.mode}); "
        f"cassettes in {plan.folder}"
    )
    verb = "Would remove" if dry_run else "Removed"
    for case in plan.files:
        positions = ", ".join(i.position for i in case.removed)
        click.echo(
            f"{verb} {len(case.removed)} of {case.before} interactions from "
            f"{case.path.name}: {positions}"
        )
    for note in plan.notes:
        click.echo(f"[WARN] {note}")
    if plan.missed:
        count = len(plan.missed)
        click.echo(
            f"[WARN] {count} case{'' if count == 1 else 's'} skipped: they missed calls; "
            "re-record them with --fluxloop-cassettes new"
        )
    files = len(plan.files)
    total = f"{plan.removed} unused interaction(s) from {files} cassette file(s)"
    if not plan.removed:
        click.echo("Nothing to remove: no unused recordings this run can vouch for.")
        return
    if dry_run:
        click.echo(f"{verb} {total} (dry run: nothing changed).")
        return
    problems = apply_prune(plan)
    if problems:
        raise CassetteError(
            f"{len(problems)} of {files} cassette file(s) not written:\n"
            + "\n".join(f"- {p}" for p in problems)
        )
    click.echo(f"{verb} {total}.")
