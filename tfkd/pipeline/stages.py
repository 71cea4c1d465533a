"""One function per pipeline stage: plain inputs (a config, a stage folder, the folders
of earlier stages) and plain outputs (a metrics dict). The runner owns ordering, seeds,
atomic stage folders and resume; Keras work lives in the helpers these functions call.
"""

import json
import os

import numpy as np

from tfkd._keras import keras
from tfkd.compress import prune as prune_lib
from tfkd.compress import quantize as q
from tfkd.data import augment, frontend, speech
from tfkd.export import carray, micro
from tfkd.fileio import atomic_write, read_json, write_json
from tfkd.models import build as build_model
from tfkd.pipeline import training

__all__ = ["STAGES", "stage_data", "stage_teacher", "stage_distill", "stage_prune",
           "stage_quantize", "stage_export", "StageError", "load_data", "VerificationError"]


class StageError(RuntimeError):
    """A stage that cannot go on; the message says why."""


class VerificationError(StageError):
    """A converted model that disagrees with its source beyond the allowed bounds."""


# -- data ---------------------------------------------------------------------------------

def stage_data(cfg, out, inputs, ctx):
    """Reads the clips, computes features, builds K augmented views of the training split."""
    fp = cfg.features
    d = cfg.data
    if d.path is not None:
        index = speech.scan(d.path, d.labels, validation_pct=d.validation_pct,
                            testing_pct=d.testing_pct, unknown_share=d.unknown_share,
                            silence_share=d.silence_share, seed=ctx.seed)
        labels = list(index.labels)
        noise = speech.load_noise(index.noise_files, fp.sample_rate)
        waves = {}
        skipped = 0
        for split in speech.SPLITS:
            w, y, s = speech.load_waves(index, index.split(split), fp.sample_rate, fp.clip_samples,
                                        skip_bad=d.skip_bad_files, noise=noise)
            waves[split] = (w, y)
            skipped += s
        counts = index.counts()
    else:
        labels = list(d.labels or speech.KWS12)
        noise = []
        waves = {split: speech.tfds_waves(split, tuple(labels), fp.sample_rate, fp.clip_samples,
                                          data_dir=d.tfds_data_dir) for split in speech.SPLITS}
        skipped = 0
        counts = {s: {labels[i]: int(np.sum(w[1] == i)) for i in range(len(labels))}
                  for s, w in waves.items()}
    for split in ("train", "validation", "test"):
        if len(waves[split][1]) == 0:
            raise StageError(f"data: the {split} split is empty (data.path {d.path})")
    views = augment.waveform_views(waves["train"][0], d.augment, noise, fp.sample_rate, ctx.seed)
    n, k, s = views.shape
    x_train = frontend.compute(views.reshape(n * k, s), fp).reshape((n, k) + frontend.feature_shape(fp))
    x_train = augment.spec_augment(x_train, d.augment, ctx.seed + 1)
    x_val = frontend.compute(waves["validation"][0], fp)
    x_test = frontend.compute(waves["test"][0], fp)
    np.savez(os.path.join(out, "features.npz"), x_train=x_train, y_train=waves["train"][1],
             x_val=x_val, y_val=waves["validation"][1], x_test=x_test, y_test=waves["test"][1])
    fp.save(os.path.join(out, "features.json"))
    write_json(os.path.join(out, "labels.json"), labels)
    return {"labels": labels, "clips": {s: int(len(waves[s][1])) for s in speech.SPLITS},
            "views": int(k), "skipped_files": int(skipped), "counts": counts,
            "input_shape": list(frontend.feature_shape(fp))}


def load_data(data_dir):
    """The data stage's arrays, labels and feature settings."""
    with np.load(os.path.join(data_dir, "features.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    with open(os.path.join(data_dir, "labels.json")) as f:
        labels = json.load(f)
    return arrays, labels, frontend.FeatureParams.load(os.path.join(data_dir, "features.json"))


def _load_teacher(inputs):
    """The teacher stage's model, or None when the run has no teacher."""
    if "teacher" not in inputs:
        return None
    return keras.models.load_model(os.path.join(inputs["teacher"], "teacher.keras"), compile=False)


def _fine_tune(model, teacher, data, cfg, epochs, learning_rate, ctx, label, callbacks=(),
               keep_best=True):
    """Fine-tunes with the teacher still teaching (labels alone when there is none)."""
    if teacher is None:
        return training.fit_plain(model, data, epochs, cfg.distill.batch_size, learning_rate,
                                  ctx.seed, callbacks=callbacks, tty=ctx.tty, echo=ctx.echo,
                                  label=label, keep_best=keep_best)
    return training.fit_distill(model, teacher, data, cfg.distill, epochs, learning_rate, ctx.seed,
                                callbacks=callbacks, tty=ctx.tty, echo=ctx.echo, label=label,
                                keep_best=keep_best)


def _test_accuracy(model, data):
    return training.accuracy(model, data["x_test"], data["y_test"])


# -- teacher ------------------------------------------------------------------------------

def stage_teacher(cfg, out, inputs, ctx):
    """Trains the teacher on labels (or loads a ``.keras`` teacher) and scores it."""
    data, labels, fp = load_data(inputs["data"])
    t = cfg.teacher
    if t.path is not None:
        try:
            model = keras.models.load_model(t.path, compile=False)
        except (OSError, ValueError) as e:
            raise StageError(f"teacher.path: cannot load {t.path}: {e}") from None
        if model.output_shape[-1] != len(labels):
            raise StageError(f"teacher.path: {t.path} has {model.output_shape[-1]} outputs, "
                             f"the data has {len(labels)} labels")
        history = {}
    else:
        model = build_model(t.model, frontend.feature_shape(fp), len(labels), **t.params)
        history = training.fit_plain(model, data, t.epochs, t.batch_size, t.learning_rate, ctx.seed,
                                     tty=ctx.tty, echo=ctx.echo, label="teacher",
                                     log_dir=ctx.log_dir("teacher"))
    model.save(os.path.join(out, "teacher.keras"))
    write_json(os.path.join(out, "history.json"), _plain(history))
    return {"accuracy": _test_accuracy(model, data), "params": int(model.count_params()),
            "val_accuracy": training.accuracy(model, data["x_val"], data["y_val"])}


def _plain(history):
    return {k: [float(v) for v in vals] for k, vals in history.items()}


# -- distill ------------------------------------------------------------------------------

def _spec(entry):
    return (entry, {}) if isinstance(entry, str) else (entry["model"], entry.get("params", {}))


def stage_distill(cfg, out, inputs, ctx):
    """Distils the student from the teacher, optionally through assistants and over
    born-again generations; without a teacher the first generation learns from labels."""
    data, labels, fp = load_data(inputs["data"])
    shape = frontend.feature_shape(fp)
    dc = cfg.distill
    teacher = _load_teacher(inputs)
    histories, chain = {}, []
    for i, entry in enumerate(dc.assistants):
        name, params = _spec(entry)
        assistant = build_model(name, shape, len(labels), **params)
        histories[f"assistant{i}"] = training.fit_distill(
            assistant, teacher, data, dc, dc.epochs, dc.learning_rate, ctx.seed + 10 + i,
            tty=ctx.tty, echo=ctx.echo, label=f"assistant {name}")
        chain.append({"model": name, "params": int(assistant.count_params()),
                      "accuracy": _test_accuracy(assistant, data)})
        teacher = assistant
    generations = []
    student = None
    for g in range(dc.generations):
        student = build_model(cfg.student.model, shape, len(labels), **cfg.student.params)
        label = "distill" if dc.generations == 1 else f"generation {g + 1}"
        if teacher is None:
            histories[f"gen{g}"] = training.fit_plain(
                student, data, dc.epochs, dc.batch_size, dc.learning_rate, ctx.seed + 100 + g,
                tty=ctx.tty, echo=ctx.echo, label=label, log_dir=ctx.log_dir(f"distill_gen{g}"))
        else:
            histories[f"gen{g}"] = training.fit_distill(
                student, teacher, data, dc, dc.epochs, dc.learning_rate, ctx.seed + 100 + g,
                tty=ctx.tty, echo=ctx.echo, label=label, log_dir=ctx.log_dir(f"distill_gen{g}"))
        generations.append(_test_accuracy(student, data))
        teacher = student
    student.save(os.path.join(out, "student.keras"))
    write_json(os.path.join(out, "history.json"),
               {k: _plain(h) for k, h in histories.items()})
    metrics = {"accuracy": generations[-1], "params": int(student.count_params()),
               "val_accuracy": training.accuracy(student, data["x_val"], data["y_val"])}
    if dc.generations > 1:
        metrics["generations"] = generations
    if chain:
        metrics["assistants"] = chain
    return metrics


# -- prune --------------------------------------------------------------------------------

def stage_prune(cfg, out, inputs, ctx):
    """Prunes the distilled student with the teacher still teaching."""
    data, labels, fp = load_data(inputs["data"])
    student = keras.models.load_model(os.path.join(inputs["distill"], "student.keras"), compile=False)
    teacher = _load_teacher(inputs)
    p = cfg.prune
    steps_per_epoch = int(np.ceil(len(data["y_train"]) / cfg.distill.batch_size))
    history = {}

    def train(model, callbacks, keep_best=True):
        if p.epochs:
            history.update(_fine_tune(model, teacher, data, cfg, p.epochs, p.learning_rate, ctx,
                                      "prune", callbacks, keep_best))

    if p.method == "magnitude":
        if p.epochs == 0:
            raise StageError("prune.epochs: magnitude pruning needs >= 1 fine-tuning epoch")
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
    pruned.save(os.path.join(out, "student.keras"))
    write_json(os.path.join(out, "history.json"), _plain(history))
    return {"method": p.method, "accuracy": _test_accuracy(pruned, data),
            "params": int(pruned.count_params()), "sparsity": sparsity,
            "sparsity_per_layer": per_layer}


# -- quantize -----------------------------------------------------------------------------

def stage_quantize(cfg, out, inputs, ctx):
    """Converts to full int8 and verifies it on the host in LiteRT and TFLite Micro."""
    data, labels, fp = load_data(inputs["data"])
    student = keras.models.load_model(os.path.join(inputs["prune"], "student.keras"), compile=False)
    x_clean = data["x_train"][:, 0]
    rep = q.representative_sample(x_clean, cfg.quantize.representative_samples, seed=ctx.seed)
    qc = cfg.quantize
    qat_metrics = {"qat": qc.qat_epochs > 0}
    if qc.qat_epochs:
        teacher = _load_teacher(inputs)

        def train(model, callbacks):
            _fine_tune(model, teacher, data, cfg, qc.qat_epochs, qc.qat_learning_rate, ctx, "qat",
                       callbacks)

        qat = q.quantization_aware(student, train, preserve_sparsity=cfg.prune.method == "magnitude")
        qat_metrics["accuracy_qat_float"] = _test_accuracy(qat, data)
        flat = q.convert_int8(qat, rep)
    else:
        flat = q.convert_int8(student, rep)
    ops = q.check_int8(flat)
    # float .tflite vs Keras: the conversion itself must not change the function.
    float_flat = q.convert_float(student)
    probe = data["x_test"][:16]
    keras_out = student.predict(probe, verbose=0)
    lite_out = q.LiteRTRunner(float_flat).run_float(probe)
    float_diff = float(np.max(np.abs(keras_out - lite_out))) if len(probe) else 0.0
    if float_diff > 1e-3 * max(1.0, float(np.max(np.abs(keras_out)))):
        raise VerificationError(f"quantize: float TFLite differs from Keras by {float_diff:.2e}")
    scores, pred = q.score_int8(flat, data["x_test"], data["y_test"])
    if scores["tflm_litert_max_step_diff"] > cfg.quantize.max_step_diff:
        raise VerificationError(
            f"quantize: TFLM and LiteRT outputs differ by {scores['tflm_litert_max_step_diff']} "
            f"int8 steps (quantize.max_step_diff {cfg.quantize.max_step_diff})")
    if scores["tflm_litert_agreement"] < cfg.quantize.min_agreement:
        raise VerificationError(
            f"quantize: TFLM/LiteRT argmax agreement {scores['tflm_litert_agreement']:.4f} is below "
            f"quantize.min_agreement {cfg.quantize.min_agreement}")
    float_pred = student.predict(data["x_test"], verbose=0).argmax(-1)
    float_acc = float(np.mean(float_pred == data["y_test"])) if len(pred) else float("nan")
    per_op, tflite_sparsity = q.tflite_weight_sparsity(flat)
    atomic_write(os.path.join(out, "model_int8.tflite"), flat)
    np.save(os.path.join(out, "tflm_predictions.npy"), pred)
    return {**scores, **qat_metrics, "accuracy_float": float_acc,
            "int8_float_agreement": float(np.mean(float_pred == pred)) if len(pred) else float("nan"),
            "float_tflite_max_abs_diff": float_diff, "ops": ops,
            "weight_sparsity": tflite_sparsity, "weight_sparsity_per_op": per_op,
            "arena_bytes_host": int(micro.measure_arena(flat))}


# -- export -------------------------------------------------------------------------------

def stage_export(cfg, out, inputs, ctx):
    """Writes ``.tflite``, ``.cc``, ``.h``, ``_ops.h`` and golden vectors."""
    data, labels, fp = load_data(inputs["data"])
    with open(os.path.join(inputs["quantize"], "model_int8.tflite"), "rb") as f:
        flat = f.read()
    # The quantize stage measured the arena and the TFLM accuracy of this very file.
    qm = read_json(os.path.join(inputs["quantize"], "done.json"))["metrics"]
    ops = qm["ops"]
    arena = int(qm["arena_bytes_host"])
    margin = int(np.ceil(arena * cfg.export.arena_margin / 16.0) * 16)
    (in_s, in_z), (out_s, out_z) = q.io_quantization(flat)
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
        "Int8TestAccuracy": float(qm.get("accuracy_tflm", float("nan"))),
    }
    paths = carray.write_firmware_files(flat, out, name, labels, constants, ops)
    n = min(cfg.export.golden_vectors, len(data["y_test"]))
    if n:
        xq = q.quantize_input(data["x_test"][:n], in_s, in_z)
        yq = micro.TFLMRunner(flat).run_int8(xq)
        paths["golden"] = os.path.join(out, f"{carray.c_identifier(name)}_golden.h")
        atomic_write(paths["golden"], carray.render_golden(carray.c_identifier(name), xq, yq))
    return {"tflite_bytes": len(flat), "arena_bytes": arena + margin, "arena_bytes_host": arena,
            "arena_margin_bytes": margin, "files": {k: os.path.basename(v) for k, v in paths.items()},
            "name": carray.c_identifier(name), "ops": ops}


#: The stage order; each entry: (name, function, names of the stages it reads).
STAGES = (
    ("data", stage_data, ()),
    ("teacher", stage_teacher, ("data",)),
    ("distill", stage_distill, ("data", "teacher")),
    ("prune", stage_prune, ("data", "distill", "teacher")),
    ("quantize", stage_quantize, ("data", "prune", "teacher")),
    ("export", stage_export, ("data", "quantize")),
)
