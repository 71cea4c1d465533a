"""Time of one epoch of (a) plain student fit, (b) Distiller with the live teacher,
(c) Distiller with cached teacher logits, printed as ratios to (a), in one run.

KWS-sized pair: the ~480k-parameter ResNet teacher and the ~24k-parameter DS-CNN-S on
49×40×1 inputs. Target: (c)/(a) <= 1.05.

Usage: python benchmarks/distill_overhead.py [--clips 2048] [--epochs 2]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tfkd  # noqa: E402
from tfkd._keras import keras  # noqa: E402
from tfkd.distill import cache  # noqa: E402
from tfkd.models import build  # noqa: E402


def timed_fit(model, data, epochs, batch):
    model.fit(data if batch is None else data[0], None if batch is None else data[1],
              epochs=1, batch_size=batch, verbose=0)  # warm-up: tracing
    start = time.perf_counter()
    model.fit(data if batch is None else data[0], None if batch is None else data[1],
              epochs=epochs, batch_size=batch, verbose=0)
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
    x = rng.uniform(0, 26, (args.clips, 49, 40, 1)).astype(np.float32)
    y = rng.integers(0, 12, args.clips).astype(np.int32)
    teacher = build("resnet_teacher", (49, 40, 1), 12)
    start = time.perf_counter()
    logits = cache.teacher_logits(teacher, x)
    cache_time = time.perf_counter() - start
    ds = cache.cached_dataset(x, y, logits, args.batch, seed=0)

    def plain():
        m = build("ds_cnn", (49, 40, 1), 12, size="s")
        m.compile(optimizer="adam", metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return timed_fit(m, (x, y), args.epochs, args.batch)

    def distiller(data, batch):
        d = tfkd.Distiller(student=build("ds_cnn", (49, 40, 1), 12, size="s"), teacher=teacher)
        d.compile(optimizer="adam", metrics=["accuracy"])
        return timed_fit(d, data, args.epochs, batch)

    # Interleaved rounds, median per variant: the machine is shared and noisy.
    runs = {"a": [], "b": [], "c": []}
    for _ in range(args.rounds):
        runs["a"].append(plain())
        runs["c"].append(distiller(ds, None))
        runs["b"].append(distiller((x, y), args.batch))
    results = {k: float(np.median(v)) for k, v in runs.items()}
    student = build("ds_cnn", (49, 40, 1), 12, size="s")
    print(f"teacher {teacher.count_params()} params, student {student.count_params()} params, "
          f"{args.clips} clips of 49x40, batch {args.batch}, {args.epochs} timed epochs")
    print(f"(a) plain student fit      {results['a']:7.2f} s/epoch  1.00")
    print(f"(b) Distiller, live teacher {results['b']:6.2f} s/epoch  {results['b'] / results['a']:.2f}")
    print(f"(c) Distiller, cached       {results['c']:6.2f} s/epoch  {results['c'] / results['a']:.2f}"
          f"   (+ {cache_time:.2f} s once to cache the logits)")


if __name__ == "__main__":
    main()
