"""The standard hand-made recipe beside `tfkd run`, on the same data, in one run.

The peer is what a competent user writes today from the public tutorials:
  * features: the same microfrontend features and speaker-disjoint splits (no augmentation),
  * a teacher trained with model.fit (the same architecture as tfkd's, 30 epochs),
  * the keras.io Distiller (teacher run on every step; T=10, alpha=0.1 as in that example),
    DS-CNN-S student, 40 epochs, best epoch kept by validation accuracy,
  * tfmot magnitude pruning (PolynomialDecay to 50 %) with a short plain fine-tune,
    strip_pruning, then post-training full-int8 quantization.
Both int8 models are scored in TFLite Micro on the same test split; flash is the
.tflite size, the arena is TFLM's own figure (host, no margin, for both). Both sides run
in this one process, after the imports, peer first: wall times are comparable.

Usage: python benchmarks/peer_recipe.py [DATA] [--epochs-scale 1.0]
(DATA defaults to ../shared/data/speech_commands_dev)
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402

from tfkd._keras import keras  # noqa: E402
from tfkd.compress import quantize as q  # noqa: E402
from tfkd.config import load  # noqa: E402
from tfkd.data import frontend, speech  # noqa: E402
from tfkd.export import micro  # noqa: E402
from tfkd.models import build  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PIPELINE = os.path.join(HERE, "..", "pipelines", "kws_micro.yaml")
PEER_TEACHER_EPOCHS = 30
PEER_STUDENT_EPOCHS = 40


class KerasIoDistiller(keras.Model):
    """The keras.io knowledge-distillation example's Distiller (teacher on every step)."""

    def __init__(self, student, teacher):
        super().__init__()
        self.teacher = teacher
        self.student = student

    def compile(self, optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha=0.1,
                temperature=3):
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = distillation_loss_fn
        self.alpha = alpha
        self.temperature = temperature

    def train_step(self, data):
        x, y = data
        teacher_predictions = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            student_predictions = self.student(x, training=True)
            student_loss = self.student_loss_fn(y, student_predictions)
            distillation_loss = self.distillation_loss_fn(
                tf.nn.softmax(teacher_predictions / self.temperature, axis=1),
                tf.nn.softmax(student_predictions / self.temperature, axis=1),
            ) * self.temperature ** 2
            loss = self.alpha * student_loss + (1 - self.alpha) * distillation_loss
        grads = tape.gradient(loss, self.student.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.student.trainable_variables))
        self.compiled_metrics.update_state(y, student_predictions)
        results = {m.name: m.result() for m in self.metrics}
        results.update({"student_loss": student_loss, "distillation_loss": distillation_loss})
        return results

    def test_step(self, data):
        x, y = data
        y_prediction = self.student(x, training=False)
        student_loss = self.student_loss_fn(y, y_prediction)
        self.compiled_metrics.update_state(y, y_prediction)
        results = {m.name: m.result() for m in self.metrics}
        results.update({"student_loss": student_loss})
        return results

    def call(self, x):
        return self.student(x)


class KeepBest(keras.callbacks.Callback):
    def __init__(self, target, monitor):
        super().__init__()
        self.target, self.monitor, self.best, self.weights = target, monitor, -1.0, None

    def on_epoch_end(self, epoch, logs=None):
        if logs.get(self.monitor, -1) > self.best:
            self.best, self.weights = logs[self.monitor], self.target.get_weights()

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.target.set_weights(self.weights)


def peer(cfg, data_path):
    start = time.perf_counter()
    cpu0 = time.process_time()
    keras.utils.set_random_seed(cfg.seed)
    fp = cfg.features
    idx = speech.scan(data_path, cfg.data.labels, seed=cfg.seed)
    noise = speech.load_noise(idx.noise_files, fp.sample_rate)
    arrays = {}
    for split in speech.SPLITS:
        w, y, _ = speech.load_waves(idx, idx.split(split), noise=noise)
        arrays[split] = (frontend.compute(w, fp), y)
    (xt, yt), (xv, yv), (xs, ys) = arrays["train"], arrays["validation"], arrays["test"]
    shape, n = frontend.feature_shape(fp), len(idx.labels)
    scce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    phases = {"data": time.perf_counter() - start}
    teacher = build(cfg.teacher.model, shape, n, **cfg.teacher.params)
    teacher.compile(keras.optimizers.Adam(1e-3), loss=scce, metrics=["sparse_categorical_accuracy"])
    teacher.fit(xt, yt, validation_data=(xv, yv), epochs=PEER_TEACHER_EPOCHS, batch_size=64, verbose=0,
                callbacks=[KeepBest(teacher, "val_sparse_categorical_accuracy")])
    phases["teacher"] = time.perf_counter() - start - sum(phases.values())
    student = build(cfg.student.model, shape, n, **cfg.student.params)
    d = KerasIoDistiller(student=student, teacher=teacher)
    d.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["sparse_categorical_accuracy"],
              student_loss_fn=scce, distillation_loss_fn=keras.losses.KLDivergence(),
              alpha=0.1, temperature=10)
    d.fit(xt, yt, validation_data=(xv, yv), epochs=PEER_STUDENT_EPOCHS, batch_size=64, verbose=0,
          callbacks=[KeepBest(student, "val_sparse_categorical_accuracy")])
    phases["distill"] = time.perf_counter() - start - sum(phases.values())
    float_acc = float(np.mean(student.predict(xs, verbose=0).argmax(-1) == ys))
    end_step = int(np.ceil(len(yt) / 64)) * 2
    pruned = tfmot.sparsity.keras.prune_low_magnitude(
        student, pruning_schedule=tfmot.sparsity.keras.PolynomialDecay(0.0, 0.5, 0, end_step))
    pruned.compile(keras.optimizers.Adam(1e-4), loss=scce, metrics=["sparse_categorical_accuracy"])
    pruned.fit(xt, yt, epochs=2, batch_size=64, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    pruned = tfmot.sparsity.keras.strip_pruning(pruned)
    pruned_acc = float(np.mean(pruned.predict(xs, verbose=0).argmax(-1) == ys))
    rng = np.random.default_rng(0)
    flat = q.convert_int8(pruned, xt[rng.choice(len(xt), min(500, len(xt)), replace=False)])
    scores, _ = q.score_int8(flat, xs, ys)
    wall = time.perf_counter() - start
    phases["prune+quantize"] = wall - sum(phases.values())
    print("peer phases (s):", {k: round(v, 1) for k, v in phases.items()}, flush=True)
    return {"teacher_accuracy": float(np.mean(teacher.predict(xs, verbose=0).argmax(-1) == ys)),
            "float_student_accuracy": float_acc, "pruned_accuracy": pruned_acc,
            "best_float_student": max(float_acc, pruned_acc),
            "tflm_int8_accuracy": scores["accuracy_tflm"], "flash_bytes": len(flat),
            "arena_bytes": micro.measure_arena(flat), "wall_s": wall, "cpu_s": time.process_time() - cpu0}


def ours(data_path, overrides):
    from tfkd.pipeline.runner import run_pipeline

    cfg = load(PIPELINE, [f"data.path={data_path}", "budgets.max_int8_drop=null", *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu0 = time.perf_counter(), time.process_time()
        m = run_pipeline(cfg, os.path.join(tmp, "run"), echo=lambda *_: None, tty=False)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"teacher_accuracy": m["teacher"]["accuracy"], "float_student_accuracy": m["distill"]["accuracy"],
            "pruned_accuracy": m["prune"]["accuracy"],
            "best_float_student": max(m["distill"]["accuracy"], m["prune"]["accuracy"]),
            "tflm_int8_accuracy": m["quantize"]["accuracy_tflm"], "flash_bytes": m["export"]["tflite_bytes"],
            "arena_bytes": m["export"]["arena_bytes_host"], "wall_s": wall, "cpu_s": cpu}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                            "speech_commands_dev"))
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="extra --set overrides for the tfkd side")
    ap.add_argument("--peer-only", action="store_true", help="run the peer recipe alone")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (medians reported)")
    args = ap.parse_args()
    data = os.path.abspath(args.data)
    cfg = load(PIPELINE, [f"data.path={data}"])
    if args.peer_only:
        print(json.dumps(peer(cfg, data), indent=1))
        return
    # Interleaved rounds, medians: the machine is shared and its speed drifts.
    rounds = [(peer(cfg, data), ours(data, args.overrides)) for _ in range(args.rounds)]
    p = {k: float(np.median([r[0][k] for r in rounds])) for k in rounds[0][0]}
    t = {k: float(np.median([r[1][k] for r in rounds])) for k in rounds[0][1]}
    keys = ["teacher_accuracy", "float_student_accuracy", "pruned_accuracy", "tflm_int8_accuracy",
            "flash_bytes", "arena_bytes", "wall_s", "cpu_s"]
    print(f"median of {args.rounds} interleaved round(s)")
    print(f"{'':26s} {'peer recipe':>12s} {'tfkd':>12s}")
    for k in keys:
        fmt = (lambda v: f"{v:12.4f}") if "accuracy" in k else (lambda v: f"{v:12.0f}")
        print(f"{k:26s} {fmt(p[k])} {fmt(t[k])}")
    ok = t["tflm_int8_accuracy"] >= p["best_float_student"] and t["flash_bytes"] < p["flash_bytes"] \
        and t["arena_bytes"] < p["arena_bytes"] and t["wall_s"] < p["wall_s"]
    print(f"\ntfkd TFLM int8 {t['tflm_int8_accuracy']:.4f} vs peer's best float student "
          f"{p['best_float_student']:.4f}; claim holds: {ok}")


if __name__ == "__main__":
    main()
