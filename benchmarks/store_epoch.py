"""Seconds per training epoch: the feature store (streamed) against the same features in memory.

Builds the data stage's store for a folder with ``kws_micro.yaml``'s data settings, loads
the same features into an in-memory ``Data``, and trains ``kws_micro.yaml``'s student
(plain, and distilled from cached teacher logits) alternately on both, timing every
epoch in one process. Prints the median epoch time of each and their ratio (the issue's
bound: the store at most 10 % slower).

Usage: python benchmarks/store_epoch.py [FOLDER] [--rounds 3] [--epochs 3]
       (default FOLDER: ../shared/data/speech_commands_dev)
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfkd._keras import keras  # noqa: E402
from tfkd.config import load  # noqa: E402
from tfkd.data.dataset import Data  # noqa: E402
from tfkd.models import build as build_model  # noqa: E402
from tfkd.pipeline.stages import build_data  # noqa: E402
from tfkd.train.fit import FitSettings, Progress, fit  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds of each epoch (training and validation)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?", default=os.path.join(ROOT, "..", "shared", "data",
                                                             "speech_commands_dev"))
    p.add_argument("--rounds", type=int, default=3, help="alternations of store and memory")
    p.add_argument("--epochs", type=int, default=3, help="epochs per fit (the first is not counted)")
    p.add_argument("--kinds", default="plain,distill", help="plain and/or distill (cached logits)")
    args = p.parse_args(argv)
    cfg = load(os.path.join(ROOT, "pipelines", "kws_micro.yaml"),
               [f"data.path={os.path.abspath(args.folder)}"])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        stored, metrics = build_data(cfg.data, cfg.features, seed=0, folder=tmp)
        n = sum(metrics["clips"].values())
        print(f"data stage: {n} clips in {time.perf_counter() - start:.1f} s")
        memory = Data(stored.labels, stored.features, stored.train_arrays(),
                      stored.arrays("validation"), stored.arrays("test"))
        teacher = build_model(cfg.teacher.model, stored.input_shape, len(stored.labels),
                              **cfg.teacher.params)
        dc = cfg.distill
        runs = {"plain": FitSettings(epochs=args.epochs, batch_size=dc.batch_size,
                                     learning_rate=dc.learning_rate),
                "distill": FitSettings.distilling(dc, epochs=args.epochs, batch_size=dc.batch_size,
                                                  learning_rate=dc.learning_rate)}
        runs = {k: v for k, v in runs.items() if k in args.kinds.split(",")}
        times = {(kind, src): [] for kind in runs for src in ("store", "memory")}
        for r in range(args.rounds):
            for kind, settings in runs.items():
                for src, data in (("store", stored), ("memory", memory)) if r % 2 == 0 else \
                        (("memory", memory), ("store", stored)):
                    student = build_model(cfg.student.model, data.input_shape, len(data.labels),
                                          **cfg.student.params)
                    timer = EpochTimer()
                    fit(student, data, settings, teacher if kind == "distill" else None, [timer],
                        seed=r, progress=Progress(echo=lambda line: None))
                    times[(kind, src)] += timer.seconds[1:]
        print(f"{stored.num_train} training clips x {stored.views} views, batch {dc.batch_size}, "
              f"{args.rounds} rounds x {args.epochs - 1} timed epochs")
        for kind in runs:
            s = statistics.median(times[(kind, "store")])
            m = statistics.median(times[(kind, "memory")])
            print(f"{kind:8s} store {s:.2f} s/epoch, memory {m:.2f} s/epoch, ratio {s / m:.3f}")
            print("  store: " + " ".join(f"{t:.2f}" for t in times[(kind, "store")]))
            print("  memory: " + " ".join(f"{t:.2f}" for t in times[(kind, "memory")]))


if __name__ == "__main__":
    main()
