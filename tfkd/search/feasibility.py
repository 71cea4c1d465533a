"""Cheap feasibility: a candidate's flash, arena and MACs in seconds, before any training.

The student is built with random weights and structured-pruned with no fine-tuning
(the kept filter counts depend on the layer widths and ``prune.ratio`` only, so the
shapes are the trained model's), converted to full int8 with a random representative
set, and measured as the pipeline measures the trained model: flash = ``.tflite``
bytes, arena = TFLite Micro's allocator on the host plus ``export.arena_margin``.
Weights do not change a dense int8 model's size or its arena, so these figures are the
trained model's up to a few bytes of quantization metadata.
"""

import dataclasses
import json
import math
import os

import numpy as np

from tfkd._keras import keras
from tfkd.compress.prune import channel_prune
from tfkd.compress.quantize import convert_int8
from tfkd.data import frontend
from tfkd.data.speech import KWS12, label_folders
from tfkd.export.micro import measure_arena
from tfkd.fileio import write_json
from tfkd.models import build as build_model

__all__ = ["Sizes", "measure", "count_macs", "num_labels", "arena_with_margin", "SizeCache"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sizes:
    """What a candidate costs on the device, measured without training."""

    flash_bytes: int
    """Full-int8 ``.tflite`` size."""
    arena_bytes_host: int
    """TFLite Micro's arena on the host (``quantize`` stage: ``arena_bytes_host``)."""
    arena_bytes: int
    """``arena_bytes_host`` plus ``export.arena_margin`` (the exported ``TensorArenaSize``)."""
    macs: int
    """Multiply-accumulates per inference (convolutions and dense layers)."""
    params: int
    """Parameters of the pruned Keras student (BatchNorm included, as the pipeline counts)."""
    input_shape: tuple
    """Model input ``(frames, channels, 1)``."""
    seconds: float = 0.0
    """Wall time of the measurement."""


def arena_with_margin(arena_host, margin):
    """The exported arena: host arena plus ``margin`` of it, rounded up to 16 bytes.

    The same rule as the export stage's ``TensorArenaSize``.
    """
    return int(arena_host) + int(math.ceil(arena_host * margin / 16.0) * 16)


def num_labels(cfg):
    """Output width of the candidate models, from the config (no clips are read)."""
    d = cfg.data
    if d.labels is not None:
        return len(d.labels)
    if d.path is not None:
        return len(label_folders(d.path))
    return len(KWS12)


def count_macs(model):
    """Multiply-accumulates of one inference of a Keras model (batch 1).

    Counts ``Conv2D`` (output pixels × kernel area × input channels / groups × filters),
    ``DepthwiseConv2D`` (output pixels × kernel area × channels × multiplier) and
    ``Dense`` (inputs × units). BatchNorm folds into the convolutions at conversion, and
    pooling, activations and additions are not multiply-accumulates.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c = layer.output_shape
            kh, kw = layer.kernel_size
            total += h * w * kh * kw * c  # c = input channels × depth multiplier
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, f = layer.output_shape
            kh, kw = layer.kernel_size
            cin = layer.input_shape[-1] // getattr(layer, "groups", 1)
            total += h * w * kh * kw * cin * f
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.input_shape[1:])) * layer.units
    return int(total)


def _randomize(model, rng):
    """Gives every weight a distinct random value, as training would.

    A fresh model's biases and BatchNorm statistics are all zeros or ones; the converter
    merges such identical constants into one buffer, so the file would be smaller than
    the trained model's (by about 15 % on a small DS-CNN).
    """
    for layer in model.layers:
        weights = layer.weights
        if not weights:
            continue
        values = []
        for w, v in zip(weights, layer.get_weights()):
            if "variance" in w.name or "gamma" in w.name:
                values.append(rng.uniform(0.5, 1.5, v.shape).astype(v.dtype))
            else:
                values.append(rng.normal(0.0, 0.1, v.shape).astype(v.dtype))
        layer.set_weights(values)


def measure(cfg, labels=None, seed=0):
    """Measures a candidate config without training.

    Args:
      cfg: the candidate's :class:`tfkd.config.PipelineConfig`.
      labels: output width (default: :func:`num_labels`).
      seed: seed of the random weights and representative set.

    Returns:
      :class:`Sizes`.

    Raises:
      ValueError: the student cannot be built with these parameters.
      ConversionError: the student does not convert to built-in int8.
    """
    import time

    start = time.perf_counter()
    shape = frontend.feature_shape(cfg.features)
    keras.utils.set_random_seed(seed)
    model = build_model(cfg.student.model, shape, labels or num_labels(cfg), **cfg.student.params)
    rng = np.random.default_rng(seed)
    _randomize(model, rng)
    p = cfg.prune
    if p.method == "structured" and p.ratio > 0:
        # No fine-tuning: only the shapes matter here.
        model = channel_prune(model, lambda m, callbacks: None, ratio=p.ratio, exclude=p.exclude)
    rep = rng.normal(0.0, 1.0, size=(8,) + tuple(shape)).astype(np.float32)
    flat = convert_int8(model, rep)
    arena = int(measure_arena(flat))
    sizes = Sizes(flash_bytes=len(flat), arena_bytes_host=arena,
                  arena_bytes=arena_with_margin(arena, cfg.export.arena_margin),
                  macs=count_macs(model), params=int(model.count_params()),
                  input_shape=tuple(int(s) for s in shape),
                  seconds=round(time.perf_counter() - start, 2))
    keras.backend.clear_session()
    return sizes


def _size_key(cfg, labels):
    # Only what shapes the converted model: the student, the input, structured pruning.
    p = cfg.prune
    return json.dumps({"model": cfg.student.model, "params": cfg.student.params,
                       "features": dataclasses.asdict(cfg.features), "labels": labels,
                       "prune": [p.method, p.ratio if p.method == "structured" else 0,
                                 list(p.exclude)],
                       "margin": cfg.export.arena_margin}, sort_keys=True, default=str)


class SizeCache:
    """Memoizes :func:`measure` per architecture (temperature and alpha do not change
    sizes), in memory and optionally in a JSON file shared by resumed searches."""

    def __init__(self, path=None):
        self.path = path
        self.entries = {}
        if path and os.path.exists(path):
            try:
                with open(path) as f:
                    self.entries = json.load(f)
            except (OSError, ValueError):
                self.entries = {}

    def get(self, cfg, labels):
        """:func:`measure` of ``cfg``, from the cache when the architecture was measured.

        Returns:
          ``(Sizes, cached)``.
        """
        key = _size_key(cfg, labels)
        if key in self.entries:
            d = dict(self.entries[key])
            d["input_shape"] = tuple(d["input_shape"])
            return Sizes(**d), True
        sizes = measure(cfg, labels)
        self.entries[key] = dataclasses.asdict(sizes)
        if self.path:
            # Other processes may have added entries: merge before writing.
            if os.path.exists(self.path):
                try:
                    with open(self.path) as f:
                        self.entries = {**json.load(f), **self.entries}
                except (OSError, ValueError):
                    pass
            write_json(self.path, self.entries)
        return sizes, False
