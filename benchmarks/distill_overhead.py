"""Time of one epoch of (a) plain student fit, (b) Distiller with the live teacher,
(c) Distiller with cached teacher logits, printed as ratios to (a), in one run.

All three variants read the *same* ``tf.data`` pipeline (one set of batches, the same
order, the same threading options); they differ only in what the step computes:
  (a) ``student.fit`` on ``(x, y)``;
  (b) ``Distiller.fit`` on ``(x, y)``: the teacher runs on every step;
  (c) ``Distiller.fit`` on ``({"inputs": x, "teacher_logits": t}, y)``: the teacher ran
      once, before training (its cost is printed apart).

KWS-sized pair: the ~480k-parameter ResNet teacher and the ~24k-parameter DS-CNN-S on
49×40×1 inputs. Target: (c)/(a) <= 1.05; (b)/(a) shows what the live teacher costs.

Usage: python benchmarks/distill_overhead.py [--clips 2048] [--epochs 2] [--rounds 3]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfkd  # noqa: E402
from tfkd._keras import keras  # noqa: E402
from tfkd.distill.distiller import INPUTS_KEY, TEACHER_LOGITS_KEY  # noqa: E402
from tfkd.models import build  # noqa: E402

SHAPE = (49, 40, 1)
CLASSES = 12


def batches(x, y, logits, batch, variant):
    """One input pipeline for every variant: the same slices, order, batching and options."""
    ds = tf.data.Dataset.from_tensor_slices((x, y, logits))
    ds = ds.shuffle(len(y), seed=0, reshuffle_each_iteration=True).batch(batch)
    if variant == "cached":
        ds = ds.map(lambda xb, yb, tb: ({INPUTS_KEY: xb, TEACHER_LOGITS_KEY: tb}, yb))
    else:
        ds = ds.map(lambda xb, yb, tb: (xb, yb))
    return ds.prefetch(1)


def timed_fit(model, ds, epochs):
    model.fit(ds, epochs=1, verbose=0)  # warm-up: tracing
    start = time.perf_counter()
    model.fit(ds, epochs=epochs, verbose=0)
    return (time.perf_counter() - start) / epochs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 26, (args.clips,) + SHAPE).astype(np.float32)
    y = rng.integers(0, CLASSES, args.clips).astype(np.int32)
    teacher = build("resnet_teacher", SHAPE, CLASSES)
    start = time.perf_counter()
    logits = teacher.predict(x, batch_size=256, verbose=0).astype(np.float32)
    cache_time = time.perf_counter() - start

    def plain():
        m = build("ds_cnn", SHAPE, CLASSES, size="s")
        m.compile(optimizer="adam", metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return timed_fit(m, batches(x, y, logits, args.batch, "plain"), args.epochs)

    def distiller(variant):
        d = tfkd.Distiller(student=build("ds_cnn", SHAPE, CLASSES, size="s"), teacher=teacher)
        d.compile(optimizer="adam", metrics=["accuracy"])
        return timed_fit(d, batches(x, y, logits, args.batch, variant), args.epochs)

    # Interleaved rounds, median per variant: the machine is shared and noisy.
    runs = {"a": [], "b": [], "c": []}
    for _ in range(args.rounds):
        runs["a"].append(plain())
        runs["b"].append(distiller("live"))
        runs["c"].append(distiller("cached"))
    r = {k: float(np.median(v)) for k, v in runs.items()}
    student = build("ds_cnn", SHAPE, CLASSES, size="s")
    print(f"teacher {teacher.count_params()} params, student {student.count_params()} params, "
          f"{args.clips} clips of 49x40, batch {args.batch}, {args.epochs} timed epochs, "
          f"median of {args.rounds} interleaved rounds, one tf.data pipeline for all")
    print(f"(a) plain student fit        {r['a']:6.2f} s/epoch  1.00")
    print(f"(b) Distiller, live teacher  {r['b']:6.2f} s/epoch  {r['b'] / r['a']:.2f}")
    print(f"(c) Distiller, cached logits {r['c']:6.2f} s/epoch  {r['c'] / r['a']:.2f}"
          f"   (+ {cache_time:.2f} s once to compute the logits)")


if __name__ == "__main__":
    main()
