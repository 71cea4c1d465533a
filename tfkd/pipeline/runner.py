"""Runs the stages in order inside a run folder, with atomic stage folders and resume.

Each stage writes into ``DIR/.<stage>.partial`` which is renamed to ``DIR/<stage>`` only
when the stage finished; ``DIR/<stage>/done.json`` records the hash of the config the
stage ran with and of the stages it read. ``--resume`` skips every stage whose record
matches; without it a folder that holds a run is refused.
"""

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
import types

import numpy as np
import tensorflow as tf

from tfkd import distribute
from tfkd._keras import keras
from tfkd.config import to_dict
from tfkd.pipeline import stages as stage_lib
from tfkd.pipeline.artifacts import RunFolder, save
from tfkd.verify import BudgetError, budget_gates

__all__ = ["RunError", "BudgetError", "run_pipeline", "stage_key", "check_budgets"]


#: Stages that train: they run inside the ``distribute`` strategy's scope.
_TRAINING = ("teacher", "distill", "prune")


class RunError(RuntimeError):
    """A run that cannot start or continue (used folder, failed stage)."""


def _hash(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stage_key(stage, raw, input_keys):
    """A stage's key: a hash of the config sections it reads and of its inputs' keys.

    Args:
      stage: a :class:`tfkd.pipeline.stages.Stage`.
      raw: the whole config as plain data (:func:`tfkd.config.to_dict`).
      input_keys: ``{stage name: key}`` of the finished stages it reads.
    """
    return _hash({"cfg": {s: raw.get(s) for s in stage.config}, "inputs": input_keys})


def _stage_seed(seed, name):
    return int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:7], 16)


def check_budgets(cfg, metrics):
    """Raises :class:`BudgetError` naming the first budget the metrics break."""
    for gate in budget_gates(cfg.budgets, metrics):
        if not gate.passed:
            raise BudgetError(gate.message)


def _seed_everything(seed):
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def run_pipeline(cfg, out_dir, *, resume=False, echo=print, tty=None, stop_after=None):
    """Runs a pipeline config into ``out_dir``.

    Args:
      cfg: a checked :class:`tfkd.config.PipelineConfig`.
      out_dir: the run folder.
      resume: skip stages whose config and inputs are unchanged.
      echo: progress output function.
      tty: Keras progress bars (default: whether stdout is a terminal).
      stop_after: stop after this stage (for interrupted runs and notebooks).

    Returns:
      The metrics dict (also in ``out_dir/metrics.json``).

    Raises:
      RunError: the folder holds a run and ``resume`` is false, or it is not writable.
      BudgetError: a budget was broken (after the report was written).
      Exception: a stage's own error; earlier stages' folders stay intact.
    """
    tty = sys.stdout.isatty() if tty is None else tty
    # First: a multi-worker strategy must exist before TensorFlow runs any op.
    strategy = distribute.resolve(cfg.distribute.strategy, tpu=cfg.distribute.tpu)
    run = RunFolder(out_dir)
    if os.path.exists(out_dir) and os.listdir(out_dir) and not resume:
        what = "holds a run" if run.is_run() else "is not empty"
        raise RunError(f"output folder {out_dir} {what}: pass --resume to continue it, "
                       "or choose another --out")
    try:
        os.makedirs(out_dir, exist_ok=True)
        probe = os.path.join(out_dir, ".write-test")
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as e:
        raise RunError(f"output folder {out_dir} is not writable ({e.strerror})") from None
    raw = to_dict(cfg)
    run.write_resolved(raw)
    metrics = run.read_metrics() if resume else {}
    metrics["distribute"] = {"strategy": distribute.name_of(strategy),
                             "replicas": distribute.replicas(strategy)}
    timings, keys = {}, {}
    for stage in stage_lib.STAGES:
        if not stage.enabled(cfg):
            continue
        name = stage.name
        reads = {arg: src for arg, src in stage.inputs.items() if src in keys}
        keys[name] = stage_key(stage, raw, {src: keys[src] for src in reads.values()})
        record = run.record(name) if resume else None
        if record is not None and record.get("key") == keys[name]:
            echo(f"[{name}] unchanged, skipped (--resume)")
            continue
        echo(f"[{name}] running")
        partial = run.partial(name)
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        seed = _stage_seed(cfg.seed, name)
        _seed_everything(seed)
        ctx = stage_lib.Context(seed=seed, tty=tty, echo=echo, logs=run.log_dir(""), folder=partial,
                                backups=run.backup(name))
        # The stage sees only the sections it declares, so its key cannot miss one it reads.
        view = types.SimpleNamespace(**{s: getattr(cfg, s) for s in stage.config})
        start = time.perf_counter()
        # Training stages build, load and fit their models inside the strategy's scope.
        with strategy.scope() if name in _TRAINING else contextlib.nullcontext():
            inputs = {arg: (run.load(reads[arg]) if arg in reads else None) for arg in stage.inputs}
            product, stage_metrics = stage.run(view, ctx, **inputs)
        save(name, partial, product)
        timings[name] = time.perf_counter() - start
        metrics[name] = _clean(stage_metrics)
        run.write_record(partial, keys[name], metrics[name])
        final = run.stage(name)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        shutil.rmtree(run.backup(name), ignore_errors=True)  # finished: nothing to resume
        with contextlib.suppress(OSError):  # the backup root, once no stage needs it
            os.rmdir(os.path.dirname(run.backup(name)))
        run.write_metrics(metrics)
        echo(f"[{name}] done in {timings[name]:.1f} s")
        if stop_after == name:
            return metrics
    if timings:
        run.add_timings(timings)
    from tfkd.report import write_report

    write_report(out_dir, metrics)
    check_budgets(cfg, metrics)
    return metrics


def _clean(obj):
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
