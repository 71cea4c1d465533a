"""The ``tfkd`` command: run, validate and eval.

Usage errors (bad keys or values, missing files) exit 2 with one line; a failing stage
or a broken budget exits 1 with one line (the traceback only with ``--verbose``).
"""

import json
import os
import sys

import click

__all__ = ["main", "cli"]


def _quiet_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _load(pipeline, overrides):
    from tfkd.config import ConfigError, load

    try:
        return load(pipeline, overrides)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None


@click.group()
@click.version_option(package_name="tfkd")
def cli():
    """tfkd: distill, prune, quantize to int8 and export keyword-spotting models for TFLite Micro."""


@cli.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key by its dotted path (repeatable).")
def validate(pipeline, overrides):
    """Check PIPELINE.yaml (and --set overrides) without running anything."""
    _quiet_tf()
    cfg = _load(pipeline, overrides)
    click.echo(f"{pipeline}: ok ({cfg.name})")


@cli.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Run folder (default runs/<pipeline name>).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key by its dotted path (repeatable).")
@click.option("--resume", is_flag=True, help="Continue a run: skip unchanged finished stages.")
@click.option("--verbose", is_flag=True, help="Show tracebacks.")
@click.option("--stop-after", type=click.Choice(["data", "teacher", "distill", "prune", "quantize"]),
              default=None, help="Stop after this stage (continue later with --resume).")
def run(pipeline, out_dir, overrides, resume, verbose, stop_after):
    """Run PIPELINE.yaml: data → teacher → distill → prune → quantize → export → report."""
    _quiet_tf()
    cfg = _load(pipeline, overrides)
    from tfkd.pipeline.runner import BudgetError, RunError, run_pipeline
    from tfkd.report import format_table, summary_rows

    out_dir = out_dir or os.path.join("runs", cfg.name)
    try:
        metrics = run_pipeline(cfg, out_dir, resume=resume, echo=click.echo, stop_after=stop_after)
    except RunError as e:
        raise click.UsageError(str(e)) from None
    except BudgetError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo(f"Interrupted: finished stages are kept in {out_dir}; continue with --resume",
                   err=True)
        sys.exit(130)
    except Exception as e:  # a stage failed: one line, earlier stages stay on disk
        if verbose:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        click.echo(f"Error: {type(e).__name__}: {msg} (run again with --verbose for the "
                   f"traceback; --resume continues from the last finished stage)", err=True)
        sys.exit(1)
    click.echo("")
    click.echo(format_table(summary_rows(metrics)))
    click.echo(f"\nrun folder: {out_dir} (report.md, metrics.json, export/)")


@cli.command("eval")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--data", "data_path", required=True, type=click.Path(file_okay=False),
              help="A Speech-Commands-layout or <label>/*.wav folder.")
@click.option("--split", type=click.Choice(["train", "validation", "test", "all"]), default="test")
@click.option("--verbose", is_flag=True, help="Show tracebacks.")
def evaluate(run_dir, data_path, split, verbose):
    """Score a run's int8 model (LiteRT, TFLM) and float student on a folder; prints JSON."""
    _quiet_tf()
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


def main():
    cli(prog_name="tfkd")


if __name__ == "__main__":
    main()
