"""Runs the stages in order inside a run folder, with atomic stage folders and resume.

Each stage writes into ``DIR/.<stage>.partial`` which is renamed to ``DIR/<stage>`` only
when the stage finished; ``DIR/<stage>/done.json`` records the hash of the config the
stage ran with and of the stages it read. ``--resume`` skips every stage whose record
matches; without it a folder that holds a run is refused.
"""

import contextlib
import os
import shutil
import sys
import time

from tfkd import distribute, verify
from tfkd.config import to_dict
from tfkd.fileio import read_json, write_json
from tfkd.pipeline import stages as stage_lib
from tfkd.pipeline.artifacts import RunFolder
from tfkd.pipeline.keys import next_key, run_stage, stage_seed
from tfkd.verify import BudgetError

__all__ = ["RunError", "BudgetError", "run_pipeline", "check_budgets", "RUN_MARKER", "mark_run_folder"]

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a second writer is not detected there
    fcntl = None

#: Written by tfkd into every run folder it makes. ``--resume`` continues only folders that
#: carry it, and tfkd replaces files only in those: never in a folder of the user's own.
RUN_MARKER = "tfkd-run.json"
_RUN_FORMAT = 1


class RunError(RuntimeError):
    """A run that cannot start or continue (used folder, failed stage)."""


def check_budgets(cfg, metrics):
    """The run's budgets against its metrics (:func:`tfkd.verify.check_budgets`).

    Raises:
      BudgetError: a budget the metrics break or cannot show.
    """
    verify.check_budgets(cfg.budgets, metrics)


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
    if not distribute.is_chief():  # another worker of a cluster: trains, writes no run folder
        from tfkd.pipeline.worker import run_worker

        return run_worker(cfg, out_dir, strategy, resume=resume, echo=echo, tty=tty,
                          stop_after=stop_after)
    run = RunFolder(out_dir)
    _check_model_sizes(cfg)
    lock = _claim(out_dir, resume)
    try:
        return _run_stages(cfg, run, strategy, resume=resume, echo=echo, tty=tty,
                           stop_after=stop_after)
    finally:
        if lock is not None:
            lock.close()  # releases the lock


def mark_run_folder(out_dir):
    """Creates ``out_dir`` (if needed) as a tfkd run folder: writes :data:`RUN_MARKER`.

    For code that assembles a run folder before :func:`run_pipeline` continues it with
    ``resume=True`` (the search seeds trial folders this way).
    """
    os.makedirs(out_dir, exist_ok=True)
    marker = os.path.join(out_dir, RUN_MARKER)
    if not os.path.isfile(marker):
        write_json(marker, {"format": _RUN_FORMAT, "tool": "tfkd"})


def _claim(out_dir, resume):
    """Checks that tfkd may write ``out_dir``, marks it as a run folder and locks it.

    Returns:
      The open lock (closing it releases the lock), or None where locks do not exist.

    Raises:
      RunError: a non-empty folder that tfkd did not make, a run without ``resume``, a
        folder another tfkd run is writing, or one that is not writable.
    """
    marker = os.path.join(out_dir, RUN_MARKER)
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        if not os.path.isfile(marker):
            raise RunError(f"output folder {out_dir} is not empty and is not a tfkd run folder "
                           f"(no {RUN_MARKER}); tfkd does not write into it: choose another --out")
        if not resume:
            raise RunError(f"output folder {out_dir} holds a run: pass --resume to continue it, "
                           "or choose another --out")
        try:
            fmt = read_json(marker).get("format")
        except (OSError, ValueError, AttributeError):
            fmt = None
        if not isinstance(fmt, int) or fmt > _RUN_FORMAT:
            raise RunError(f"output folder {out_dir}: {RUN_MARKER} is not one this tfkd "
                           f"writes (format {fmt!r}); choose another --out")
    try:
        mark_run_folder(out_dir)
        return _lock(out_dir)
    except OSError as e:
        raise RunError(f"output folder {out_dir} is not writable ({e.strerror})") from None


def _lock(out_dir):
    """An exclusive lock on the run folder itself, with this process's PID in the marker.

    The lock is the kernel's (``flock`` on the folder): it goes with the process, so a
    run killed with -9 leaves no stale lock behind.
    """
    if fcntl is None:
        return None
    fd = os.open(out_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        try:
            pid = read_json(os.path.join(out_dir, RUN_MARKER)).get("pid", "?")
        except (OSError, ValueError, AttributeError):
            pid = "?"
        raise RunError(f"output folder {out_dir} is in use by another tfkd run (PID {pid}): "
                       "wait for it to finish, or choose another --out") from None
    marker = os.path.join(out_dir, RUN_MARKER)
    write_json(marker, {**read_json(marker), "pid": os.getpid()})
    return _FolderLock(fd)


class _FolderLock:
    """The run folder's open descriptor that holds its ``flock``; :meth:`close` releases it."""

    def __init__(self, fd):
        self.fd = fd

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _check_model_sizes(cfg):
    """Refuses zoo models beyond ``limits.MAX_MODEL_PARAMS`` before any weight exists.

    Each model is counted in a TensorFlow graph that is never run (see
    :func:`tfkd.limits.count_params_unallocated`), so a config asking for billions of
    parameters costs a fraction of a second, not all memory. Models that cannot be
    built are left to their stage, which names the problem.
    """
    from tfkd.data import frontend
    from tfkd.pipeline import checks

    n, shape = checks.num_labels(cfg.data), frontend.feature_shape(cfg.features)
    specs = [("student.params", cfg.student.model, cfg.student.params)]
    if cfg.teacher is not None and cfg.teacher.path is None:
        specs.append(("teacher.params", cfg.teacher.model, cfg.teacher.params))
    specs += [(f"distill.assistants[{i}].params", a.model, a.params)
              for i, a in enumerate(cfg.distill.assistants)]
    for key, model, params in specs:
        try:
            checks.check_model_size(key, model, params, shape, n)
        except checks.ModelSizeError as e:
            raise RunError(str(e)) from None
        except Exception:  # noqa: BLE001 - not buildable: the stage says why, in one line
            continue


def _clear_logs(run, name):
    """Removes a stage's TensorBoard folders, which a killed attempt may have left."""
    root = run.log_dir("")
    if os.path.isdir(root):
        for entry in os.listdir(root):
            if entry.startswith(name):
                shutil.rmtree(os.path.join(root, entry), ignore_errors=True)


def _run_stages(cfg, run, strategy, *, resume, echo, tty, stop_after):
    raw = to_dict(cfg)
    run.write_resolved(raw)
    # Every stage's metrics come from its own record (a skipped stage's too), never from a
    # metrics.json that a crash may have left behind its stage folders.
    metrics = {}
    metrics["distribute"] = {"strategy": distribute.name_of(strategy),
                             "replicas": distribute.replicas(strategy)}
    timings, keys = {}, {}
    for stage in stage_lib.STAGES:
        if not stage.enabled(cfg):
            continue
        name = stage.name
        reads = {arg: src for arg, src in stage.inputs.items() if src in keys}
        keys[name] = next_key(stage, cfg, raw, keys)
        try:
            record = run.record(name) if resume else None
        except ValueError:  # a damaged done.json: not ours to replace without asking
            raise RunError(f"{run.stage(name)}: its record is damaged; move the folder away or "
                           "choose another --out") from None
        if record is not None and record.get("key") == keys[name]:
            echo(f"[{name}] unchanged, skipped (--resume)")
            metrics[name] = record.get("metrics") or {}
            if stop_after == name:
                return metrics
            continue
        final = run.stage(name)
        if os.path.lexists(final) and (os.path.islink(final) or record is None and resume):
            raise RunError(f"{final} was not written by tfkd (no {name} record in it); move it "
                           "away or choose another --out")
        echo(f"[{name}] running")
        _clear_logs(run, name)
        partial = run.partial(name)
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        ctx = stage_lib.Context(seed=stage_seed(cfg.seed, name), tty=tty, echo=echo,
                                logs=run.log_dir(""), folder=partial, backups=run.backup(name))
        start = time.perf_counter()
        metrics[name] = run_stage(stage, cfg, ctx, strategy=strategy, reads=reads, load=run.load)
        timings[name] = time.perf_counter() - start
        run.write_record(partial, keys[name], metrics[name])
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
    from tfkd.pipeline.report import write_report

    write_report(run.root, metrics)
    check_budgets(cfg, metrics)
    return metrics
