"""Compares distillation methods on the same student and data, over several seeds.

Methods: no teacher, KD (Hinton), KD + FitNets hints, KD + attention transfer, DKD, DIST,
two born-again generations, and a teacher-assistant chain. One teacher (trained once,
as in the pipeline) teaches every method; accuracy is on the speaker-disjoint test split.

Usage: python benchmarks/kd_methods.py [DATA] [--seeds 3] [--epochs 25] [--student-channels 64]
       [--student-blocks 4] [--methods "no teacher,KD,teacher assistant"]
(the capacity-gap setting: --student-channels 16 --student-blocks 2, about 1.9k parameters)
"""

import argparse
import dataclasses
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tfkd.config import DistillConfig, load  # noqa: E402
from tfkd.data import frontend  # noqa: E402
from tfkd.models import build  # noqa: E402
from tfkd.pipeline import training  # noqa: E402
from tfkd.pipeline.runner import Context  # noqa: E402
from tfkd.pipeline.stages import load_data, stage_data  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                            "speech_commands_dev"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--student-channels", type=int, default=64)
    ap.add_argument("--student-blocks", type=int, default=4)
    ap.add_argument("--methods", default="", help="comma-separated name prefixes to run (default: all)")
    args = ap.parse_args()
    cfg = load(os.path.join(HERE, "..", "pipelines", "kws_micro.yaml"), [f"data.path={os.path.abspath(args.data)}"])
    quiet = dict(tty=False, echo=lambda *_: None)
    with tempfile.TemporaryDirectory() as tmp:
        stage_data(cfg, tmp, {}, Context(seed=0, run_dir=tmp, metrics={}, **quiet))
        data, labels, fp = load_data(tmp)
    shape, n = frontend.feature_shape(fp), len(labels)
    teacher = build(cfg.teacher.model, shape, n, **cfg.teacher.params)
    training.fit_plain(teacher, data, cfg.teacher.epochs, 64, cfg.teacher.learning_rate, 0, **quiet)
    t_acc = training.accuracy(teacher, data["x_test"], data["y_test"])
    student_params = {"size": "s", "channels": args.student_channels, "blocks": args.student_blocks}

    def student():
        return build("ds_cnn", shape, n, **student_params)

    base = dataclasses.replace(cfg.distill, epochs=args.epochs)
    hint = [{"teacher": "stage1_block0_out", "student": "relu_pw2", "loss": "hint", "weight": 1.0}]
    att = [{"teacher": "stage1_block0_out", "student": "relu_pw2", "loss": "attention", "weight": 100.0}]

    def kd(dc, teach=None):
        def run(seed):
            s = student()
            training.fit_distill(s, teach or teacher, data, dc, dc.epochs, dc.learning_rate, seed, **quiet)
            return s
        return run

    def plain(seed):
        s = student()
        training.fit_plain(s, data, base.epochs, base.batch_size, base.learning_rate, seed, **quiet)
        return s

    def born_again(seed):
        g1 = plain(seed)
        return kd(base, g1)(seed + 1)

    def assistant_chain(seed):
        ta = build("ds_cnn", shape, n, size="m")
        training.fit_distill(ta, teacher, data, base, base.epochs, base.learning_rate, seed, **quiet)
        return kd(base, ta)(seed + 1)

    methods = {
        "no teacher (labels only)": plain,
        "KD (kl, T=4)": kd(base),
        "KD + hints": kd(dataclasses.replace(base, features=hint)),
        "KD + attention": kd(dataclasses.replace(base, features=att)),
        "DKD": kd(dataclasses.replace(base, loss="dkd", alpha=1.0 / 9.0)),
        "DIST": kd(dataclasses.replace(base, loss="dist", temperature=1.0)),
        "born-again, 2 generations": born_again,
        "teacher assistant (ds_cnn_m)": assistant_chain,
    }
    print(f"teacher {cfg.teacher.model} ({teacher.count_params()} params): test accuracy {t_acc:.4f}")
    print(f"student ds_cnn {student_params} ({student().count_params()} params), {args.epochs} epochs, "
          f"{args.seeds} seeds, {len(data['y_test'])} test clips")
    print(f"{'method':32s} {'mean':>7s} {'std':>7s}  per seed            time/seed")
    wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
    for name, fn in methods.items():
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        accs, start = [], time.perf_counter()
        for seed in range(args.seeds):
            accs.append(training.accuracy(fn(seed), data["x_test"], data["y_test"]))
        per = (time.perf_counter() - start) / args.seeds
        print(f"{name:32s} {np.mean(accs):7.4f} {np.std(accs):7.4f}  "
              f"{' '.join(f'{a:.3f}' for a in accs):18s} {per:6.0f} s", flush=True)


if __name__ == "__main__":
    main()
