"""The ``tfkd search`` command (:mod:`tfkd.search` does the work; click lives here only)."""

import dataclasses
import os
import sys
import time

import click

from tfkd.cli._output import fail, interruptible, quiet

__all__ = ["search"]


@click.command("search")
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--budget", default=None, metavar="flash=23KB,arena=32KB,macs=2M",
              help="Device budget (replaces search.budget figures). Bytes: B, KB, MB with "
                   "1 KB = 1024 B; MACs: K, M, G (decimal). Arena includes export.arena_margin.")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Trials to run now (default search.trials, 20); --resume adds them.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Search folder (default searches/<pipeline name>).")
@click.option("--resume", is_flag=True,
              help="Continue the study in --out (several processes may share it).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a pipeline key or a search.* key (repeatable).")
@click.option("--dry-run", is_flag=True,
              help="Measure a random sample of the space against the budget; train nothing.")
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="--dry-run: candidates sampled (default search.samples, 32).")
@click.option("--verbose", is_flag=True, help="Show tracebacks.")
@interruptible
def search(pipeline, budget, trials, out_dir, resume, overrides, dry_run, samples, verbose):
    """Search student size, features, pruning and distillation settings under a device budget.

    Each candidate is first measured without training (random weights, int8, TFLite
    Micro's arena); one over budget is rejected in seconds. The others run the whole
    pipeline. Writes search.md, pareto.png and front/<name>.yaml (one `tfkd run`-ready
    pipeline per Pareto-front point) into the search folder.
    """
    with quiet(verbose):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from tfkd.config import ConfigError
        from tfkd.search import space

        try:
            cfg, settings = space.load_search(pipeline, overrides, budget)
        except ConfigError as e:
            raise click.UsageError(str(e)) from None
        changes = {k: v for k, v in (("trials", trials), ("samples", samples)) if v is not None}
        settings = dataclasses.replace(settings, **changes)
        click.echo(f"budget: {settings.budget.describe()}")
        click.echo("space: " + ", ".join(f"{d.name} {d.describe()}" for d in settings.space))
        for line in settings.off:
            click.echo(f"  not searched: {line}")
        if dry_run:
            try:
                _dry_run(cfg, settings)
            except Exception as e:  # one line, unless --verbose
                fail(e, verbose, "")
            return
        _search(cfg, settings, out_dir or os.path.join("searches", cfg.name), resume, verbose)


def _dry_run(cfg, settings):
    from tfkd.search.study import dry_run

    results = dry_run(cfg, settings, echo=click.echo)
    fits = [r for r in results if not r[2]]
    distinct = {repr(sorted((k, v) for k, v in r[0].items()
                            if k not in ("temperature", "alpha"))) for r in results}
    click.echo(f"\n{len(fits)} of {len(results)} sampled candidates fit the budget "
               f"({settings.budget.describe()}); {len(distinct)} distinct architectures measured")
    if fits:
        flash = sorted(r[1].flash_bytes for r in fits)
        arena = sorted(r[1].arena_bytes for r in fits)
        click.echo(f"fitting candidates: flash {flash[0]}..{flash[-1]} B, "
                   f"arena {arena[0]}..{arena[-1]} B")


def _search(cfg, settings, out_dir, resume, verbose):
    from tfkd.search.report import winner_line, write_report
    from tfkd.search.study import SearchError, run_search

    start = time.perf_counter()
    try:
        study = run_search(cfg, settings, out_dir, resume=resume, echo=click.echo)
    except SearchError as e:
        raise click.UsageError(str(e)) from None
    except KeyboardInterrupt:
        click.echo(f"Interrupted: finished trials are kept in {out_dir}/study.db; "
                   "continue with --resume", err=True)
        sys.exit(130)
    except Exception as e:  # one line, unless --verbose
        fail(e, verbose, "; --resume continues the study")
    wall = study.user_attrs.get("wall_s", 0.0) + time.perf_counter() - start
    study.set_user_attr("wall_s", wall)
    rows, front, win = write_report(out_dir, study, wall_s=wall)
    click.echo("")
    click.echo(f"{len(front)} Pareto-front point(s); report: {os.path.join(out_dir, 'search.md')}")
    if win is None:
        click.echo("Error: no trained candidate fits the budget "
                   f"({settings.budget.describe()}); see {os.path.join(out_dir, 'search.md')}",
                   err=True)
        sys.exit(1)
    click.echo(winner_line(win, out_dir))
