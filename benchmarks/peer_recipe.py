"""The standard hand-made recipe beside `tfkd run`, on the same data, in one run.

The peer is what a competent user writes today from the public tutorials:
  * features: the same microfrontend features and speaker-disjoint splits (no augmentation),
  * a teacher trained with model.fit (the same architecture as tfkd's, 30 epochs),
  * the keras.io Distiller (teacher run on every step; T=10, alpha=0.1 as in that example),
    the pipeline's student (today DS-CNN-XS), as many epochs as the pipeline distills
    (but at least 40), best epoch kept by validation accuracy,
  * tfmot magnitude pruning (PolynomialDecay to 50 %, with a mask-update frequency that
    really reaches 50 % on a data set this small: tfmot's default of 100 steps never
    fires here) with a short plain fine-tune, strip_pruning, then post-training full-int8
    quantization; the achieved sparsity is printed.
A second peer column, "peer + aug", runs the same recipe on tfkd's augmentation views
(one view per clip per epoch, as tfkd trains), to separate augmentation from the rest.
Both int8 models are scored in TFLite Micro on the same test split; flash is the
.tflite size, the arena is TFLM's own figure (host, no margin, for both). Both sides run
in this one process, after the imports, peer first: wall times are comparable.

Usage: python benchmarks/peer_recipe.py [DATA] [--rounds 1]
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
from tfkd.data import augment, frontend, speech  # noqa: E402
from tfkd.models import build  # noqa: E402
from tfkd.export.micro import measure_arena  # noqa: E402
from tfkd.verify import score_int8  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PIPELINE = os.path.join(HERE, "..", "pipelines", "kws_micro.yaml")
PEER_TEACHER_EPOCHS = 30
#: At least this many student epochs; more when the pipeline distills longer, so that the
#: comparison is not one of schedule lengths.
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


def guide_prune(model, x, y, *, batch_size=64, epochs=2, target=0.5):
    """tfmot's pruning guide (``prune_low_magnitude`` + ``PolynomialDecay`` to ``target``,
    ``UpdatePruningStep``, a short plain fine-tune, ``strip_pruning``), with a schedule that
    really reaches its target on a small data set.

    The guide sizes ``end_step`` as steps/epoch × epochs and keeps tfmot's default
    ``frequency=100``: on MNIST (1,688 steps) the mask updates 17 times, but on a few
    thousand clips (tens of steps) it never updates and the "pruned" model stays dense.
    Here the mask updates about 10 times, and the last update falls on ``end_step``
    (the polynomial reaches ``target`` only there).

    Returns:
      ``(stripped model, achieved kernel sparsity)``: the fraction of zero weights over
      the pruned (Conv2D/Dense) kernels, measured after stripping.
    """
    steps = int(np.ceil(len(y) / batch_size)) * epochs
    frequency = max(1, steps // 10)
    end_step = max(frequency, ((steps - 1) // frequency) * frequency)
    pruned = tfmot.sparsity.keras.prune_low_magnitude(
        model, pruning_schedule=tfmot.sparsity.keras.PolynomialDecay(
            0.0, target, begin_step=0, end_step=end_step, frequency=frequency))
    scce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    pruned.compile(keras.optimizers.Adam(1e-4), loss=scce, metrics=["sparse_categorical_accuracy"])
    pruned.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    kernels = [l.kernel.numpy() for l in stripped.layers
               if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))
               and not isinstance(l, keras.layers.DepthwiseConv2D)]
    zeros = sum(int(np.sum(k == 0)) for k in kernels)
    return stripped, zeros / max(1, sum(k.size for k in kernels))


def peer_data(cfg, data_path, augmented):
    """Features of the three splits; with ``augmented``, tfkd's K augmented training views.

    Returns:
      ``(x_train, y_train, x_val, y_val, x_test, y_test)``; ``x_train`` is ``[N, K, ...]``
      with ``augmented`` (K = ``data.augment.views``) and ``[N, ...]`` without.
    """
    fp = cfg.features
    idx = speech.scan(data_path, cfg.data.labels, seed=cfg.seed)
    noise = speech.load_noise(idx.noise_files, fp.sample_rate)
    out = {}
    for split in speech.SPLITS:
        w, y, _ = speech.load_waves(idx, idx.split(split), noise=noise)
        if split == "train" and augmented:
            views = augment.waveform_views(w, cfg.data.augment, noise, fp.sample_rate, cfg.seed)
            n, k, s = views.shape
            x = frontend.compute(views.reshape(n * k, s), fp).reshape((n, k) + frontend.feature_shape(fp))
            x = augment.spec_augment(x, cfg.data.augment, cfg.seed + 1)
        else:
            x = frontend.compute(w, fp)
        out[split] = (x, y)
    return (*out["train"], *out["validation"], *out["test"])


def one_view_per_epoch(x_views, y, batch_size, seed):
    """A plain tf.data input that shows each clip once per epoch, in a random one of its views."""
    n, k = x_views.shape[:2]
    xs, ys = tf.constant(x_views), tf.constant(y)
    ds = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda i: (tf.gather(xs, i)[tf.random.uniform((), 0, k, tf.int64, seed=seed)],
                           tf.gather(ys, i)))
    return ds.batch(batch_size).prefetch(1)


def peer(cfg, data_path, augmented=False):
    """The hand-made recipe; ``augmented`` feeds it tfkd's augmentation views (one per clip
    per epoch), everything else unchanged."""
    start = time.perf_counter()
    cpu0 = time.process_time()
    keras.utils.set_random_seed(cfg.seed)
    fp = cfg.features
    xt, yt, xv, yv, xs, ys = peer_data(cfg, data_path, augmented)
    shape, n = frontend.feature_shape(fp), len(cfg.data.labels)
    train = one_view_per_epoch(xt, yt, 64, cfg.seed) if augmented else None
    x_clean = xt[:, 0] if augmented else xt
    scce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    phases = {"data": time.perf_counter() - start}
    teacher = build(cfg.teacher.model, shape, n, **cfg.teacher.params)
    teacher.compile(keras.optimizers.Adam(1e-3), loss=scce, metrics=["sparse_categorical_accuracy"])
    fit_args = dict(x=train) if augmented else dict(x=xt, y=yt, batch_size=64)
    teacher.fit(**fit_args, validation_data=(xv, yv), epochs=PEER_TEACHER_EPOCHS, verbose=0,
                callbacks=[KeepBest(teacher, "val_sparse_categorical_accuracy")])
    phases["teacher"] = time.perf_counter() - start - sum(phases.values())
    student = build(cfg.student.model, shape, n, **cfg.student.params)
    d = KerasIoDistiller(student=student, teacher=teacher)
    d.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["sparse_categorical_accuracy"],
              student_loss_fn=scce, distillation_loss_fn=keras.losses.KLDivergence(),
              alpha=0.1, temperature=10)
    d.fit(**fit_args, validation_data=(xv, yv), epochs=max(PEER_STUDENT_EPOCHS, cfg.distill.epochs), verbose=0,
          callbacks=[KeepBest(student, "val_sparse_categorical_accuracy")])
    phases["distill"] = time.perf_counter() - start - sum(phases.values())
    float_acc = float(np.mean(student.predict(xs, verbose=0).argmax(-1) == ys))
    pruned, sparsity = guide_prune(student, x_clean, yt)
    print(f"peer pruning: kernel sparsity after the schedule {sparsity:.3f}", flush=True)
    pruned_acc = float(np.mean(pruned.predict(xs, verbose=0).argmax(-1) == ys))
    rng = np.random.default_rng(0)
    flat = q.convert_int8(pruned, x_clean[rng.choice(len(x_clean), min(500, len(x_clean)), replace=False)])
    scores, _ = score_int8(flat, xs, ys)
    wall = time.perf_counter() - start
    phases["prune+quantize"] = wall - sum(phases.values())
    print("peer phases (s):", {k: round(v, 1) for k, v in phases.items()}, flush=True)
    return {"teacher_accuracy": float(np.mean(teacher.predict(xs, verbose=0).argmax(-1) == ys)),
            "float_student_accuracy": float_acc, "pruned_accuracy": pruned_acc,
            "pruned_sparsity": sparsity,
            "best_float_student": max(float_acc, pruned_acc),
            "tflm_int8_accuracy": scores["accuracy_tflm"], "flash_bytes": len(flat),
            "arena_bytes": measure_arena(flat), "wall_s": wall, "cpu_s": time.process_time() - cpu0}


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
            "arena_bytes": m["export"]["arena_bytes_host"], "wall_s": wall, "cpu_s": cpu,
            "prune_method": m["prune"]["method"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                            "speech_commands_dev"))
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="extra --set overrides for the tfkd side")
    ap.add_argument("--peer-only", action="store_true", help="run the peer recipe alone")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians reported)")
    args = ap.parse_args()
    data = os.path.abspath(args.data)
    cfg = load(PIPELINE, [f"data.path={data}"])
    if args.peer_only:
        print(json.dumps(peer(cfg, data), indent=1))
        return
    # Interleaved rounds, medians: the machine is shared and its speed drifts.
    rounds = [(peer(cfg, data), peer(cfg, data, augmented=True), ours(data, args.overrides))
              for _ in range(args.rounds)]
    cols = [{k: (float(np.median([r[c][k] for r in rounds])) if k != "prune_method" else v)
             for k, v in rounds[0][c].items()} for c in range(3)]
    keys = ["teacher_accuracy", "float_student_accuracy", "pruned_accuracy", "tflm_int8_accuracy",
            "flash_bytes", "arena_bytes", "wall_s", "cpu_s"]
    print(f"median of {args.rounds} interleaved round(s); test split of {data}")
    print(f"{'':26s} {'peer recipe':>12s} {'peer + aug':>12s} {'tfkd':>12s}")
    for k in keys:
        fmt = (lambda v: f"{v:12.4f}") if "accuracy" in k else (lambda v: f"{v:12.0f}")
        print(f"{k:26s} " + " ".join(fmt(c[k]) for c in cols))
    print(f"{'pruned_sparsity':26s} " + " ".join(
        f"{c['pruned_sparsity']:12.3f}" if "pruned_sparsity" in c else f"{c['prune_method']:>12s}"
        for c in cols))


if __name__ == "__main__":
    main()
