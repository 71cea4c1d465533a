"""The pipeline on a worker that is not the chief of a multi-worker cluster.

Every worker of a ``TF_CONFIG`` cluster runs the same ``tfkd run PIPELINE --out DIR``.
The chief (:func:`tfkd.distribute.is_chief`) runs every stage and writes the run folder.
Another worker:

* waits for the chief's data stage (the feature store in ``DIR/data``, on storage that
  every worker reads) instead of running it;
* runs each training stage with the chief, in the same strategy (the replicas train in
  sync on slices of the same global batches; see ``StoreData.train_dataset``);
* keeps its trained models in a temporary folder of its own (the next training stage
  reads them there) and writes nothing into ``DIR`` but Keras' temporary checkpoints;
* leaves quantize and export to the chief, and waits until the chief has finished them.
"""

import os
import shutil
import tempfile
import time

from tfkd import distribute
from tfkd.config import to_dict
from tfkd.pipeline import stages as stage_lib
from tfkd.pipeline.artifacts import RunFolder, load
from tfkd.pipeline.keys import next_key, run_stage, stage_seed

__all__ = ["run_worker", "WorkerError", "WAIT_S"]

#: How long a worker waits for the chief's data stage.
WAIT_S = 6 * 3600


class WorkerError(RuntimeError):
    """A worker that cannot follow its chief; the message says why."""


def _wait_for(chief, name, key, echo, wait_s, poll_s=2.0):
    """Waits until the chief's ``name`` stage has finished with ``key``."""
    deadline = time.monotonic() + wait_s
    echo(f"[{name}] waiting for the chief's {name} stage in {chief.stage(name)}")
    while True:
        try:
            record = chief.record(name)
        except ValueError:  # being written
            record = None
        if record is not None and record.get("key") == key:
            return
        if time.monotonic() > deadline:
            raise WorkerError(f"worker {distribute.worker()[1]}: the chief's {name} stage did not "
                              f"finish in {chief.stage(name)} within {wait_s} s")
        time.sleep(poll_s)


def run_worker(cfg, out_dir, strategy, *, resume=False, echo=print, tty=False, stop_after=None,
               wait_s=WAIT_S):
    """Runs a non-chief worker's part of the pipeline (see the module docstring).

    Args:
      cfg: the checked :class:`tfkd.config.PipelineConfig` (the same as the chief's).
      out_dir: the chief's run folder (shared storage).
      strategy: the multi-worker strategy (already created).
      resume: follow the chief in skipping training stages it finished before.
      echo, tty: progress output.
      stop_after: stop after this stage.
      wait_s: how long to wait for the chief's data stage.

    Returns:
      This worker's metrics of the stages it trained.

    Raises:
      WorkerError: the chief's data stage did not appear in time.
    """
    chief = RunFolder(out_dir)
    scratch = RunFolder(tempfile.mkdtemp(prefix="tfkd-worker-"))
    raw = to_dict(cfg)
    keys, product_dirs = {}, {}
    metrics = {"distribute": {"strategy": distribute.name_of(strategy),
                              "replicas": distribute.replicas(strategy)}}
    try:
        for stage in stage_lib.STAGES:
            if not stage.enabled(cfg):
                continue
            name = stage.name
            reads = {arg: src for arg, src in stage.inputs.items() if src in keys}
            keys[name] = next_key(stage, cfg, raw, keys)
            if name == "data":
                _wait_for(chief, name, keys[name], echo, wait_s)
                product_dirs[name] = chief.stage(name)
            elif stage.trains:
                record = chief.record(name) if resume else None
                if record is not None and record.get("key") == keys[name]:
                    echo(f"[{name}] unchanged, skipped (--resume)")
                    product_dirs[name] = chief.stage(name)
                else:
                    metrics[name] = _train(stage, cfg, chief, scratch, reads, product_dirs, strategy,
                                           echo, tty)
                    product_dirs[name] = scratch.stage(name)
            if stop_after == name:
                return metrics
        # Quantize and export are the chief's. Waiting for them keeps this worker in the
        # cluster, so the chief's coordination service sees no task vanish mid-run.
        last = [s for s in stage_lib.STAGES if s.enabled(cfg)][-1]
        if not last.trains:
            _wait_for(chief, last.name, keys[last.name], echo, wait_s)
        return metrics
    finally:
        shutil.rmtree(scratch.root, ignore_errors=True)


def _train(stage, cfg, chief, scratch, reads, product_dirs, strategy, echo, tty):
    name = stage.name
    echo(f"[{name}] running (worker {distribute.worker()[1]})")
    partial = scratch.partial(name)
    os.makedirs(partial)
    # Checkpoints under the chief's backup folder: Keras gives each non-chief worker a
    # temporary sub-folder there and removes it when training ends.
    ctx = stage_lib.Context(seed=stage_seed(cfg.seed, name), tty=tty, echo=echo, folder=partial,
                            backups=chief.backup(name))
    metrics = run_stage(stage, cfg, ctx, strategy=strategy, reads=reads,
                        load=lambda src: load(src, product_dirs[src]))
    os.replace(partial, scratch.stage(name))
    echo(f"[{name}] done (worker {distribute.worker()[1]})")
    return metrics
