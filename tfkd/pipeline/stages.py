"""One function per pipeline stage, with plain inputs and outputs.

Each stage function takes the config sections it declares (``cfg.<section>``), a
:class:`Context` and the products of earlier stages as keyword arguments, and returns
``(product, metrics)``. It opens no file: :mod:`tfkd.pipeline.artifacts` saves and loads
the products, and :mod:`tfkd.pipeline.runner` orders the stages (:data:`STAGES`).
"""

import dataclasses
import os
import re
import shutil
import tempfile
import typing
import weakref

import numpy as np

from tfkd._keras import ModelFileError, load_user_model
from tfkd import verify
from tfkd.compress import prune as prune_lib
from tfkd.compress import quantize as q
from tfkd.data import frontend, online, speech
from tfkd.data import transfer as transfer_lib
from tfkd.data.store_data import StoreData
from tfkd.data.stream import build_store
from tfkd.distill.ensemble import ensemble
from tfkd.export import carray, golden, micro
from tfkd.models import build as build_model
from tfkd.pipeline.artifacts import Firmware, Quantized, Trained, store_folder
from tfkd.pipeline.keys import stage_seed  # the data stage's seed: the same clips
from tfkd.train.fit import FitSettings, Progress, accuracy, fit

__all__ = ["Stage", "STAGES", "Context", "StageError", "build_data", "data", "teacher",
           "distill", "prune", "quantize", "export"]


class StageError(RuntimeError):
    """A stage that cannot go on; the message says why."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Context:
    """What a stage may use besides its config sections and inputs."""

    seed: int
    """The stage's own seed (derived from the master seed and the stage name)."""
    echo: typing.Callable = print
    """Progress line printer."""
    tty: bool = False
    """Keras progress bars instead of one line per epoch."""
    logs: typing.Optional[str] = None
    """TensorBoard root folder, or None."""
    folder: typing.Optional[str] = None
    """The stage's own (partial) folder, for a product written while it is made (a
    streaming feature store); stages that return objects leave it alone."""

    backups: typing.Optional[str] = None
    """Root of the per-epoch checkpoints of this stage's training runs (kept by the runner
    until the stage finishes, so ``--resume`` continues an interrupted run), or None."""

    def progress(self, label, log=None):
        """A :class:`tfkd.train.fit.Progress` for one training run."""
        log_dir = os.path.join(self.logs, log) if self.logs and log else None
        backup = os.path.join(self.backups, re.sub(r"[^\w.-]+", "_", label)) if self.backups else None
        return Progress(label=label, echo=self.echo, tty=self.tty, log_dir=log_dir,
                        backup_dir=backup)


def _test_accuracy(model, data):
    return accuracy(model, *data.arrays("test"))


def _val_accuracy(model, data):
    return accuracy(model, *data.arrays("validation"))


# -- data ---------------------------------------------------------------------------------

def build_data(d, fp, seed, folder=None):
    """Reads the clips, computes features and K augmented views of the training split,
    streaming them in bounded chunks into a feature store (flat memory at any size).

    Args:
      d: a :class:`tfkd.config.DataConfig`.
      fp: the :class:`tfkd.data.frontend.FeatureParams`.
      seed: split, order, augmentation and SpecAugment seed.
      folder: where to write the store (a temporary folder when None).

    Returns:
      ``(StoreData, metrics)``.

    Raises:
      StageError: a split is empty.
    """
    temporary = folder is None
    folder = folder or tempfile.mkdtemp(prefix="tfkd-store-")
    store = build_store(folder, d, fp, seed)
    for split in ("train", "validation", "test"):
        if store.clips(split) == 0:
            raise StageError(f"data: the {split} split is empty (data.path {d.path})")
    splits = store.manifest["splits"]
    data = StoreData(store)
    if temporary:  # a notebook's or a benchmark's store goes with its Data object
        weakref.finalize(data, shutil.rmtree, folder, True)
    return data, {
        "labels": store.labels, "clips": {s: store.clips(s) for s in speech.SPLITS},
        "views": store.views("train"), "counts": {s: store.counts(s) for s in speech.SPLITS},
        "skipped_files": sum(int(splits[s]["skipped"]) for s in speech.SPLITS),
        "input_shape": list(frontend.feature_shape(fp)),
        "store": {"shards": sum(len(splits[s]["shards"]) for s in speech.SPLITS),
                  "bytes": sum(int(f["bytes"]) for s in speech.SPLITS for f in splits[s]["shards"])}}


def data(cfg, ctx):
    """The data stage: :func:`build_data` with the run's settings, the store written into
    the stage's folder."""
    return build_data(cfg.data, cfg.features, ctx.seed,
                      store_folder(ctx.folder) if ctx.folder else None)

# -- teacher ------------------------------------------------------------------------------

def _load_teacher_file(path, num_labels):
    try:  # only .keras, checked, in Keras safe mode: a teacher file may come from anyone
        model = load_user_model(path, "teacher.path")
    except ModelFileError as e:
        raise StageError(str(e)) from None
    if model.output_shape[-1] != num_labels:
        raise StageError(f"teacher.path: {path} has {model.output_shape[-1]} outputs, "
                         f"the data has {num_labels} labels")
    return model


def _online_data(cfg, data, distill=None):
    """``data`` with training batches augmented afresh every epoch from the clip files
    (consistent mode); with ``distill``, its mixup and transfer clips join in."""
    try:
        index, entries, noise = online.folder_entries(cfg.data, data.features,
                                                      stage_seed(cfg.seed, "data"))
    except ValueError as e:
        raise StageError(str(e)) from None
    if tuple(index.labels) != tuple(data.labels) or len(entries) != data.num_train:
        raise StageError(f"data.path: {cfg.data.path} changed since the data stage "
                         f"({len(entries)} training clips now, {data.num_train} then): rerun it")
    mixup = None
    if distill is not None:
        if distill.transfer is not None:
            entries += transfer_lib.transfer_entries(distill.transfer)
        if distill.other_words:
            entries += transfer_lib.other_word_entries(
                index, validation_pct=cfg.data.validation_pct, testing_pct=cfg.data.testing_pct)
        mixup = distill.mixup if distill.mixup.prob > 0 else None
    return online.OnlineData(data, entries, noise, cfg.data.augment, mixup)


def teacher(cfg, ctx, *, data):
    """Trains the teacher (or an ensemble of teachers) on labels, or loads a ``.keras``
    teacher, and scores it."""
    t = cfg.teacher
    history, members = {}, []
    if t.path is not None:
        model = _load_teacher_file(t.path, len(data.labels))
    else:
        settings = FitSettings(epochs=t.epochs, batch_size=t.batch_size, learning_rate=t.learning_rate)
        train_data = _online_data(cfg, data) if t.mode == "consistent" else data
        for i in range(t.ensemble):
            member = build_model(t.model, data.input_shape, len(data.labels), **t.params)
            label, log = ("teacher", "teacher") if i == 0 else (f"teacher {i + 1}", f"teacher{i}")
            h = fit(member, train_data, settings, seed=ctx.seed + i, progress=ctx.progress(label, log))
            history = history or h  # the first member's curves (the report plots one run)
            members.append(member)
        model = ensemble(members)
    metrics = {"accuracy": _test_accuracy(model, data), "params": int(model.count_params()),
               "val_accuracy": _val_accuracy(model, data)}
    if len(members) > 1:
        metrics["ensemble"] = [{"accuracy": _test_accuracy(m, data), "params": int(m.count_params()),
                                "val_accuracy": _val_accuracy(m, data)} for m in members]
    return Trained(model=model, history=history), metrics


# -- distill ------------------------------------------------------------------------------

def distill(cfg, ctx, *, data, teacher):
    """Distils the student from the teacher, optionally through assistants and over
    born-again generations; without a teacher the first generation learns from labels."""
    dc = cfg.distill
    settings = FitSettings.distilling(dc, epochs=dc.epochs, batch_size=dc.batch_size,
                                      learning_rate=dc.learning_rate)
    train_data = data
    if dc.mode == "consistent" and teacher is not None:
        train_data = _online_data(cfg, data, dc)
        settings = dataclasses.replace(settings, cache=False)  # every batch is new
    n = len(data.labels)
    histories, chain = {}, []
    for i, a in enumerate(dc.assistants):
        assistant = build_model(a.model, data.input_shape, n, **a.params)
        histories[f"assistant{i}"] = fit(assistant, train_data, settings, teacher, seed=ctx.seed + 10 + i,
                                         progress=ctx.progress(f"assistant {a.model}"))
        chain.append({"model": a.model, "params": int(assistant.count_params()),
                      "accuracy": _test_accuracy(assistant, data)})
        teacher = assistant
    generations, student = [], None
    for g in range(dc.generations):
        student = build_model(cfg.student.model, data.input_shape, n, **cfg.student.params)
        label = "distill" if dc.generations == 1 else f"generation {g + 1}"
        histories[f"gen{g}"] = fit(student, train_data, settings, teacher, seed=ctx.seed + 100 + g,
                                   progress=ctx.progress(label, f"distill_gen{g}"))
        generations.append(_test_accuracy(student, data))
        teacher = student
    metrics = {"accuracy": generations[-1], "params": int(student.count_params()),
               "val_accuracy": _val_accuracy(student, data)}
    if train_data is not data:
        metrics["mode"] = "consistent"
        metrics["transfer_clips"] = int(train_data.unlabelled)
    if dc.generations > 1:
        metrics["generations"] = generations
    if chain:
        metrics["assistants"] = chain
    return Trained(model=student, history=histories), metrics


# -- prune --------------------------------------------------------------------------------

def prune(cfg, ctx, *, data, student, teacher):
    """Prunes the distilled student with the teacher still teaching."""
    p = cfg.prune
    settings = FitSettings.distilling(cfg.distill, epochs=p.epochs,
                                      batch_size=p.batch_size or cfg.distill.batch_size,
                                      learning_rate=p.learning_rate)
    steps_per_epoch = data.steps_per_epoch(settings.batch_size)
    history = {}

    def train(model, callbacks, keep_best=True):
        if p.epochs:
            history.update(fit(model, data, dataclasses.replace(settings, keep_best=keep_best),
                               teacher, callbacks, seed=ctx.seed, progress=ctx.progress("prune")))

    if p.method == "magnitude":
        end = max(1, int(0.75 * p.epochs * steps_per_epoch))
        pruned = prune_lib.magnitude_prune(
            student, lambda m, cb: train(m, cb, keep_best=False), target_sparsity=p.target_sparsity,
            end_step=end, schedule=p.schedule, exclude=p.exclude,
            frequency=max(1, steps_per_epoch // 2))
    elif p.method == "structured":
        pruned = prune_lib.channel_prune(student, train, ratio=p.ratio, exclude=p.exclude)
    else:
        pruned = student
    per_layer, sparsity = prune_lib.kernel_sparsity(pruned)
    return Trained(model=pruned, history=history), {
        "method": p.method, "accuracy": _test_accuracy(pruned, data),
        "params": int(pruned.count_params()), "sparsity": sparsity,
        "sparsity_per_layer": per_layer}


# -- quantize -----------------------------------------------------------------------------

def quantize(cfg, ctx, *, data, student, teacher):
    """Converts to full int8 (after optional QAT) and verifies the model it converted."""
    qc = cfg.quantize
    converted = student
    extra = {"qat": qc.qat_epochs > 0}
    if qc.qat_epochs:
        settings = FitSettings.distilling(cfg.distill, epochs=qc.qat_epochs,
                                          batch_size=qc.qat_batch_size or cfg.distill.batch_size,
                                          learning_rate=qc.qat_learning_rate)
        converted = q.quantization_aware(
            student, lambda m, cb: fit(m, data, settings, teacher, cb, seed=ctx.seed,
                                       progress=ctx.progress("qat")),
            preserve_sparsity=cfg.prune.method == "magnitude")
        extra["accuracy_qat_float"] = _test_accuracy(converted, data)
    flat = q.convert_int8(converted, data.representative(qc.representative_samples, ctx.seed))
    x, y = data.arrays("test")
    # The float check and accuracy_float use the model that was converted (the QAT
    # model after QAT), not the student it started from.
    report = verify.verify_int8(flat, converted, x, y, float_flat=q.convert_float(converted),
                                max_step_diff=qc.max_step_diff, min_agreement=qc.min_agreement)
    report.raise_for_failures()
    metrics = {**report.metrics, **extra}
    gates = [dict(key=g.key, measured=g.measured, bound=g.bound, passed=g.passed)
             for g in report.gates]
    return Quantized(flat=flat, predictions=report.predictions,
                     verification={**report.metrics, "gates": gates}), metrics


# -- export -------------------------------------------------------------------------------

def export(cfg, ctx, *, data, quantized):
    """Renders ``.tflite``, ``.cc``, ``.h``, ``_ops.h`` and golden vectors."""
    flat = quantized.flat
    # The quantize stage measured the arena and the TFLM accuracy of this very file.
    qm = quantized.verification
    ops, arena = qm["ops"], int(qm["arena_bytes_host"])
    margin = int(np.ceil(arena * cfg.export.arena_margin / 16.0) * 16)
    (in_s, in_z), (out_s, out_z) = micro.io_quantization(flat)
    fp = data.features
    name = cfg.export.name or cfg.name
    constants = {
        "InputScale": in_s, "InputZeroPoint": in_z, "OutputScale": out_s, "OutputZeroPoint": out_z,
        "FeatureKind": fp.kind, "FeatureScale": float(fp.feature_scale),
        "SampleRate": fp.sample_rate, "ClipDurationMs": fp.clip_ms,
        "FeatureWindowMs": fp.window_ms, "FeatureStrideMs": fp.stride_ms,
        "FeatureChannels": fp.num_channels, "FeatureFrames": fp.num_frames,
        "FeatureLowerBandHz": float(fp.lower_band_hz), "FeatureUpperBandHz": float(fp.upper_band_hz),
        "FeaturePcan": bool(fp.enable_pcan), "FeatureNoiseReduction": bool(fp.noise_reduction),
        "ArenaBytesHost": arena, "ArenaMarginBytes": margin, "TensorArenaSize": arena + margin,
        "Int8TestAccuracy": float(qm.get("accuracy_tflm") or float("nan")),
    }
    files = {}
    kinds = carray.write_firmware_files(flat, "", name, list(data.labels), constants, ops,
                                        writer=files.__setitem__)
    ident = carray.c_identifier(name)
    x, y = data.arrays("test")
    rows = golden.select(y, quantized.predictions, cfg.export.golden_vectors)
    if rows:
        xq = micro.quantize_input(x[rows], in_s, in_z)
        kinds["golden"] = f"{ident}_golden.h"
        files[kinds["golden"]] = carray.render_golden(ident, xq, micro.TFLMRunner(flat).run_int8(xq))
    return Firmware(files=files, kinds=kinds), {
        "tflite_bytes": len(flat), "arena_bytes": arena + margin, "arena_bytes_host": arena,
        "arena_margin_bytes": margin, "files": dict(kinds), "name": ident, "ops": ops}


# -- the order ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class Stage:
    """One step of the pipeline, with everything its result depends on."""

    name: str
    """The stage's name (its folder in the run)."""
    run: typing.Callable
    """``run(cfg, ctx, **inputs) -> (product, metrics)``."""
    config: tuple
    """The config sections it reads; it is handed only these, and its key covers them."""
    inputs: dict = dataclasses.field(default_factory=dict)
    """Keyword argument → the stage whose product it receives (None when that stage is off)."""
    enabled: typing.Callable = lambda cfg: True
    """Whether the run has this stage."""
    trains: bool = False
    """Whether it trains: it builds, loads and fits its models inside the ``distribute``
    strategy's scope, and every worker of a cluster runs it (the others are the chief's)."""


STAGES = (
    Stage(name="data", run=data, config=("seed", "data", "features")),
    Stage(name="teacher", run=teacher, config=("seed", "teacher", "data"), inputs={"data": "data"},
          enabled=lambda cfg: cfg.teacher is not None, trains=True),
    Stage(name="distill", run=distill, config=("seed", "student", "distill", "data"),
          inputs={"data": "data", "teacher": "teacher"}, trains=True),
    Stage(name="prune", run=prune, config=("seed", "prune", "distill"),
          inputs={"data": "data", "student": "distill", "teacher": "teacher"}, trains=True),
    Stage(name="quantize", run=quantize, config=("seed", "quantize", "distill", "prune"),
          inputs={"data": "data", "student": "prune", "teacher": "teacher"}),
    Stage(name="export", run=export, config=("export", "name"),
          inputs={"data": "data", "quantized": "quantize"}),
)
"""The stage order."""
