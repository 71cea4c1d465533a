"""The ``tfkd`` command: run, validate and eval.

Usage errors (bad keys or values, missing files) exit 2 with one line; a failing stage
or a broken budget exits 1 with one line (the traceback only with ``--verbose``); Ctrl-C
exits 130 with one line, at any moment.

Quiet by default: without ``--verbose`` a run prints its summary and nothing else.
TensorFlow's C++ log, its Python warnings and the converter's chatter are kept off the
terminal (see :func:`tfkd.cli._output.quiet`); tfkd's own stage lines and Keras progress bars need
``--verbose`` too.
"""

import json
import os
import sys

import click

from tfkd.cli._output import fail, first_line, interruptible, quiet
from tfkd.cli.search import search

__all__ = ["main", "cli"]


def _load(pipeline, overrides):
    """The pipeline config; a ``search`` section (and ``--set search.*``) is checked with
    ``tfkd search``'s own parser, so every command accepts the same files."""
    from tfkd.config import ConfigError
    from tfkd.search import space

    try:
        return space.load_search(pipeline, overrides, optional=True)[0]
    except ConfigError as e:
        raise click.UsageError(str(e)) from None


def _dry_build(cfg):
    """Builds the config's models without data (:func:`tfkd.pipeline.checks.dry_build`);
    a failure is a usage error of one line."""
    from tfkd.config import ConfigError
    from tfkd.pipeline import checks

    try:
        checks.dry_build(cfg)
    except ConfigError as e:
        raise click.UsageError(first_line(e)) from None
    except Exception as e:  # a model that cannot be built: one line, not a traceback
        raise click.UsageError(f"building the models failed: {type(e).__name__}: "
                               f"{first_line(e)}") from None


def _firmware_line(out_dir, metrics):
    e = metrics.get("export") or {}
    if not e.get("tflite_bytes"):
        return None
    folder = os.path.join(out_dir, "export")
    main = e.get("files", {}).get("cc", "")
    return (f"firmware: {folder}{os.sep} ({main}, .h, _ops.h, main.cc, Makefile): model "
            f"{e['tflite_bytes']:,} B flash, tensor arena {e.get('arena_bytes', 0):,} B")


@click.group()
@click.version_option(package_name="tfkd", prog_name="tfkd")
def cli():
    """tfkd: distill, prune, quantize to int8 and export keyword-spotting models for TFLite Micro."""


@cli.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key by its dotted path (repeatable).")
@click.option("--no-build", is_flag=True,
              help="Check the config only; skip building the models (faster, no TensorFlow).")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's log and tracebacks.")
@interruptible
def validate(pipeline, overrides, no_build, verbose):
    """Check PIPELINE.yaml (and --set overrides) without training anything.

    A search section (and --set search.* overrides) is checked as tfkd search reads it.
    """
    with quiet(verbose):
        cfg = _load(pipeline, overrides)
        if not no_build:
            _dry_build(cfg)
    click.echo(f"{pipeline}: ok ({cfg.name})")


@cli.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Run folder (default runs/<pipeline name>).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key by its dotted path (repeatable).")
@click.option("--resume", is_flag=True, help="Continue a run: skip unchanged finished stages.")
@click.option("--verbose", is_flag=True,
              help="Show stage progress, TensorFlow's log and tracebacks.")
@click.option("--stop-after", type=click.Choice(["data", "teacher", "distill", "prune", "quantize"]),
              default=None, help="Stop after this stage (continue later with --resume).")
@interruptible
def run(pipeline, out_dir, overrides, resume, verbose, stop_after):
    """Run PIPELINE.yaml: data → teacher → distill → prune → quantize → export → report."""
    with quiet(verbose):
        cfg = _load(pipeline, overrides)  # (a search section is checked, not used)
        from tfkd.pipeline.runner import BudgetError, RunError, run_pipeline
        from tfkd.pipeline.report import format_table, summary_rows

        out_dir = out_dir or os.path.join("runs", cfg.name)
        try:
            metrics = run_pipeline(cfg, out_dir, resume=resume, stop_after=stop_after,
                                   echo=click.echo if verbose else (lambda *a, **k: None),
                                   tty=None if verbose else False)
        except RunError as e:
            raise click.UsageError(str(e)) from None
        except BudgetError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo(f"Interrupted: finished stages are kept in {out_dir}; continue with "
                       f"--resume", err=True)
            sys.exit(130)
        except Exception as e:  # a stage failed: one line, earlier stages stay on disk
            fail(e, verbose, "; --resume continues from the last finished stage")
    click.echo(format_table(summary_rows(metrics)))
    click.echo(f"\nrun folder: {out_dir} (report.md, metrics.json)")
    line = _firmware_line(out_dir, metrics)
    if line:
        click.echo(line)


@cli.command("eval")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--data", "data_path", required=True, type=click.Path(file_okay=False),
              help="A Speech-Commands-layout or <label>/*.wav folder.")
@click.option("--split", type=click.Choice(["train", "validation", "test", "all"]), default="test")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's log and tracebacks.")
@interruptible
def evaluate(run_dir, data_path, split, verbose):
    """Score a run's int8 model (LiteRT, TFLM) and float student on a folder; prints JSON."""
    with quiet(verbose):
        from tfkd.data.speech import DataError
        from tfkd.data.wav import AudioError
        from tfkd.export.micro import TFLMUnavailableError
        from tfkd.pipeline.evaluate import EvalError, evaluate_run

        try:
            result = evaluate_run(run_dir, data_path, split)
        except (EvalError, DataError, AudioError) as e:
            if verbose:
                raise
            raise click.UsageError(str(e)) from None
        except TFLMUnavailableError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(1)
    click.echo(json.dumps(result, sort_keys=True))


cli.add_command(search)


def main():
    cli(prog_name="tfkd")


