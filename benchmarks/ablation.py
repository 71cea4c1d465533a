"""What each step of the flagship chain buys: the same student and data, several seeds.

Rows, in order (each adds one thing to the row above it):
  1. labels only, clean clips     (no teacher, one clean view per clip)
  2. + augmentation views          (no teacher, ``data.augment.views`` from the pipeline)
  3. + KD                          (the pipeline's teacher and logit loss)
  4. + feature KD                  (KD + FitNets hints, the better of hints/attention in
                                    ``benchmarks/kd_methods.py`` on this data)
  5. then pruning                  (row 4's student through the pipeline's prune stage;
                                    no row when the pipeline's ``prune.method`` is none)
  6. then int8 on TFLite Micro     (the last row's model in full int8, TFLM's accuracy)

Every row is a ``tfkd run`` of ``pipelines/kws_micro.yaml`` with overrides (printed), so a
row can be reproduced by hand. Rows 3–6 of a seed share one run folder: the data and
teacher stages run once (``--resume`` skips them). Accuracy is on the test split
(speakers never heard in training); mean ± standard deviation over the seeds.

Usage: python benchmarks/ablation.py [DATA] [--seeds 3] [--out runs/ablation]
(DATA defaults to ../shared/data/speech_commands_dev)
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tfkd.config import load  # noqa: E402
from tfkd.pipeline.runner import run_pipeline  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PIPELINE = os.path.join(HERE, "..", "pipelines", "kws_micro.yaml")
HINT = "distill.features=[{teacher: stage1_block0_out, student: relu_pw2, loss: hint, weight: 1.0}]"

#: (row label, overrides, stop after, metrics read from the run)
NO_TEACHER = ["teacher=null", "prune.method=none"]
ROWS = (
    ("labels only, clean clips", NO_TEACHER + ["data.augment.views=1"], "distill"),
    ("+ augmentation views", NO_TEACHER, "distill"),
    ("+ KD", [], "distill"),
    ("+ feature KD (hints)", [HINT], None),
)


def _run(data, seed, overrides, out, stop_after, resume):
    cfg = load(PIPELINE, [f"data.path={data}", f"seed={seed}", "budgets.max_int8_drop=null",
                          "budgets.max_flash_bytes=null", "budgets.max_arena_bytes=null",
                          *overrides])
    return run_pipeline(cfg, out, resume=resume, echo=lambda *_: None, tty=False,
                        stop_after=stop_after)


def one_seed(data, seed, out):
    """The six rows for one seed: ``{row: {accuracy, params[, flash, arena]}}``."""
    rows = {}
    for i, (label, overrides, stop) in enumerate(ROWS[:2]):
        m = _run(data, seed, overrides, os.path.join(out, f"seed{seed}_row{i + 1}"), stop, False)
        rows[label] = {"accuracy": m["distill"]["accuracy"], "params": m["distill"]["params"]}
    shared = os.path.join(out, f"seed{seed}_kd")
    m = _run(data, seed, ROWS[2][1], shared, "distill", False)
    rows[ROWS[2][0]] = {"accuracy": m["distill"]["accuracy"], "params": m["distill"]["params"]}
    m = _run(data, seed, ROWS[3][1], shared, None, True)
    rows[ROWS[3][0]] = {"accuracy": m["distill"]["accuracy"], "params": m["distill"]["params"]}
    if m["prune"]["method"] != "none":  # (the flagship trains its ≤ 23 KB student at size)
        rows[f"then {m['prune']['method']} pruning"] = {"accuracy": m["prune"]["accuracy"],
                                                        "params": m["prune"]["params"]}
    rows["then int8 on TFLite Micro"] = {
        "accuracy": m["quantize"]["accuracy_tflm"], "params": m["prune"]["params"],
        "flash": m["export"]["tflite_bytes"], "arena": m["export"]["arena_bytes_host"]}
    rows["teacher"] = {"accuracy": m["teacher"]["accuracy"], "params": m["teacher"]["params"]}
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                            "speech_commands_dev"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join("runs", "ablation"))
    args = ap.parse_args()
    data = os.path.abspath(args.data)
    if os.path.exists(args.out) and os.listdir(args.out):
        raise SystemExit(f"--out {args.out} is not empty: choose another folder")
    per_seed = [one_seed(data, s, args.out) for s in range(args.seeds)]
    print(f"pipelines/kws_micro.yaml on {data}, test split, {args.seeds} seeds (mean ± std)")
    print("overrides per row:")
    for label, overrides, stop in ROWS:
        print(f"  {label}: {' '.join(overrides) or '(none)'}"
              f"{f' --stop-after {stop}' if stop else ''}")
    print(f"\n{'step':30s} {'accuracy':>16s} {'params':>8s} {'flash B':>8s} {'arena B':>8s}  per seed")
    for label in per_seed[0]:
        acc = [r[label]["accuracy"] for r in per_seed]
        first = per_seed[0][label]
        flash = f"{first['flash']:8d}" if "flash" in first else f"{'':8s}"
        arena = f"{first['arena']:8d}" if "arena" in first else f"{'':8s}"
        print(f"{label:30s} {np.mean(acc):7.4f} ± {np.std(acc):6.4f} {first['params']:8d} "
              f"{flash} {arena}  {' '.join(f'{a:.3f}' for a in acc)}")


if __name__ == "__main__":
    main()
