"""Runs the stages in order inside a run folder, with atomic stage folders and resume.

Each stage writes into ``DIR/.<stage>.partial`` which is renamed to ``DIR/<stage>`` only
when the stage finished; ``DIR/<stage>/done.json`` records the hash of the config the
stage ran with and of the stages it read. ``--resume`` skips every stage whose record
matches; without it a folder that holds a run is refused.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np
import tensorflow as tf
import yaml

from tfkd._keras import keras
from tfkd.config import to_dict
from tfkd.fileio import atomic_write, read_json, write_json
from tfkd.pipeline import stages as stage_lib

__all__ = ["RunError", "BudgetError", "run_pipeline", "stage_sections", "check_budgets"]


class RunError(RuntimeError):
    """A run that cannot start or continue (used folder, failed stage)."""


class BudgetError(RuntimeError):
    """A budget limit that the run broke; the message names the limit and the value."""


#: The config sections each stage depends on (its hash covers these).
_SECTIONS = {
    "data": ("seed", "data", "features"),
    "teacher": ("seed", "teacher"),
    "distill": ("seed", "student", "distill"),
    "prune": ("seed", "prune", "distill"),
    "quantize": ("seed", "quantize", "distill", "prune"),
    "export": ("export", "name"),
}


def stage_sections(name):
    return _SECTIONS[name]


@dataclasses.dataclass
class Context:
    """What a stage may use besides its config: seed, output, metrics so far."""

    seed: int
    tty: bool
    echo: callable
    run_dir: str
    metrics: dict

    def log_dir(self, name):
        return os.path.join(self.run_dir, "logs", name)


def _hash(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stage_seed(seed, name):
    return int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:7], 16)


def _active_stages(cfg):
    out = []
    for name, fn, reads in stage_lib.STAGES:
        if name == "teacher" and cfg.teacher is None:
            continue
        reads = tuple(r for r in reads if not (r == "teacher" and cfg.teacher is None))
        out.append((name, fn, reads))
    return out


def check_budgets(cfg, metrics):
    """Raises :class:`BudgetError` for the first budget the metrics break."""
    b = cfg.budgets
    q = metrics.get("quantize", {})
    e = metrics.get("export", {})
    checks = [
        ("budgets.max_flash_bytes", b.max_flash_bytes, e.get("tflite_bytes"), lambda lim, v: v <= lim),
        ("budgets.max_arena_bytes", b.max_arena_bytes, e.get("arena_bytes"), lambda lim, v: v <= lim),
        ("budgets.min_int8_accuracy", b.min_int8_accuracy, q.get("accuracy_tflm"), lambda lim, v: v >= lim),
        ("budgets.max_int8_drop", b.max_int8_drop,
         None if "accuracy_tflm" not in q else q["accuracy_float"] - q["accuracy_tflm"],
         lambda lim, v: v <= lim),
    ]
    for key, limit, value, ok in checks:
        if limit is not None and value is not None and not ok(limit, value):
            raise BudgetError(f"{key} {limit} broken: measured {value:.6g}")


def _seed_everything(seed):
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _is_run_dir(path):
    return os.path.isfile(os.path.join(path, "resolved.yaml"))


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
    if os.path.exists(out_dir) and os.listdir(out_dir) and not resume:
        what = "holds a run" if _is_run_dir(out_dir) else "is not empty"
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
    atomic_write(os.path.join(out_dir, "resolved.yaml"), yaml.safe_dump(raw, sort_keys=False))
    metrics_path = os.path.join(out_dir, "metrics.json")
    metrics = read_json(metrics_path) if resume and os.path.exists(metrics_path) else {}
    timings = {}
    keys = {}
    for name, fn, reads in _active_stages(cfg):
        key = _hash({"cfg": {s: raw.get(s) for s in _SECTIONS[name]},
                     "inputs": {r: keys[r] for r in reads}})
        keys[name] = key
        final = os.path.join(out_dir, name)
        done = os.path.join(final, "done.json")
        if resume and os.path.exists(done) and read_json(done).get("key") == key:
            echo(f"[{name}] unchanged, skipped (--resume)")
            continue
        echo(f"[{name}] running")
        partial = os.path.join(out_dir, f".{name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        seed = _stage_seed(cfg.seed, name)
        _seed_everything(seed)
        ctx = Context(seed=seed, tty=tty, echo=echo, run_dir=out_dir, metrics=metrics)
        start = time.perf_counter()
        stage_metrics = fn(cfg, partial, {r: os.path.join(out_dir, r) for r in reads}, ctx)
        timings[name] = time.perf_counter() - start
        write_json(os.path.join(partial, "done.json"), {"key": key, "metrics": _clean(stage_metrics)})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        metrics[name] = _clean(stage_metrics)
        write_json(metrics_path, metrics)
        echo(f"[{name}] done in {timings[name]:.1f} s")
        if stop_after == name:
            return metrics
    if timings:
        old = read_json(os.path.join(out_dir, "timings.json")) if resume and \
            os.path.exists(os.path.join(out_dir, "timings.json")) else {}
        write_json(os.path.join(out_dir, "timings.json"), {**old, **timings})
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
