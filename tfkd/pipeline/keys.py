"""What the chief and every worker must agree on, and the one way a stage runs.

A stage's key (the hash of the config sections it reads and of its inputs' keys), its
seed, the data folder's manifest, and :func:`run_stage`, which both
:mod:`tfkd.pipeline.runner` (the chief) and :mod:`tfkd.pipeline.worker` (the other
workers of a cluster) call, so the two loops cannot drift apart.
"""

import contextlib
import hashlib
import json
import types

import numpy as np

from tfkd.data import speech
from tfkd.lazy_tf import keras, tf
from tfkd.pipeline.artifacts import save

__all__ = ["short_hash", "stage_key", "next_key", "stage_seed", "data_manifest", "json_safe",
           "seed_everything", "run_stage"]


def short_hash(obj, length=16):
    """The first ``length`` hex digits of the SHA-256 of ``obj`` as sorted JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]


def stage_key(stage, raw, input_keys):
    """A stage's key: a hash of the config sections it reads and of its inputs' keys.

    Args:
      stage: a :class:`tfkd.pipeline.stages.Stage`.
      raw: the whole config as plain data (:func:`tfkd.config.to_dict`).
      input_keys: ``{stage name: key}`` of the finished stages it reads.
    """
    return short_hash({"cfg": {s: raw.get(s) for s in stage.config}, "inputs": input_keys})


def next_key(stage, cfg, raw, keys):
    """A stage's key (:func:`stage_key`) from the keys of the stages finished before it.

    Args:
      stage: the :class:`tfkd.pipeline.stages.Stage`.
      cfg: the config; raw: the same as plain data (:func:`tfkd.config.to_dict`).
      keys: ``{stage name: key}`` of the stages before it (absent: disabled).
    """
    inputs_keys = {src: keys[src] for src in stage.inputs.values() if src in keys}
    if stage.name == "data":  # the data, not only the config: clips added, removed, replaced
        inputs_keys["data files"] = data_manifest(cfg)
    return stage_key(stage, raw, inputs_keys)


def stage_seed(seed, name):
    """The seed of stage ``name`` under the master ``seed``."""
    return int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:7], 16)


def data_manifest(cfg):
    """What the data stage reads besides its config: the folder's files, sizes and times."""
    if cfg.data.path is None:
        return None  # TFDS: a versioned data set
    return short_hash(speech.manifest(cfg.data.path))


def seed_everything(seed):
    """Seeds Python, NumPy and TensorFlow, and makes TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def json_safe(obj):
    """``obj`` with NumPy numbers as Python ones, tuples as lists, NaN and inf as None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def run_stage(stage, cfg, ctx, *, strategy, reads, load):
    """Runs one stage into ``ctx.folder`` and saves its product there.

    Seeds everything with ``ctx.seed``, hands the stage only the config sections it
    declares (so its key cannot miss one it reads), and, for a stage that trains, builds,
    loads and fits its models inside the strategy's scope.

    Args:
      stage: the :class:`tfkd.pipeline.stages.Stage`.
      cfg: the :class:`tfkd.config.PipelineConfig`.
      ctx: the stage's :class:`tfkd.pipeline.stages.Context` (``folder``: where it saves).
      strategy: the ``tf.distribute`` strategy.
      reads: ``{keyword argument: stage name}`` of the inputs that exist (the others get None).
      load: ``load(stage name) -> product``.

    Returns:
      The stage's metrics, JSON-safe (:func:`json_safe`).
    """
    seed_everything(ctx.seed)
    sections = types.SimpleNamespace(**{s: getattr(cfg, s) for s in stage.config})
    with strategy.scope() if stage.trains else contextlib.nullcontext():
        inputs = {arg: (load(reads[arg]) if arg in reads else None) for arg in stage.inputs}
        product, metrics = stage.run(sections, ctx, **inputs)
    save(stage.name, ctx.folder, product)
    return json_safe(metrics)
