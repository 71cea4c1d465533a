"""How close the int8 student on TFLite Micro gets to its teacher, per distillation recipe.

For each configuration and seed, ``pipelines/kws_micro.yaml`` runs with the
configuration's overrides (printed, so a row can be reproduced with ``tfkd run ... --set``)
and this script reads: the teacher's accuracy, the float student's, the int8 model's
on TFLite Micro, the gap (teacher − int8), flash (``.tflite`` bytes), the host-measured
arena, the distill stage's seconds per epoch and the minutes the run took.

Accuracy is scored on validation + test pooled (speakers never heard in training; one
split of the dev set alone is too few clips to separate recipes), mean ± sample standard
deviation over the seeds. Configurations that share a teacher share one run folder per
seed: the data and teacher stages run once (``--resume`` skips them), so "min" counts the
student's stages only (distill, prune, quantize, export) and the teacher's minutes are
in their own column (mean over the teachers this invocation trained). "s/epoch" is the distill stage's seconds per epoch (for ``cached``
including the one-off teacher pass over every view).

Usage:
  python benchmarks/teacher_gap.py [DATA] [--seeds 3] [--out runs/teacher_gap]
      [--configs NAME ...] [--set KEY=VALUE ...]
(DATA defaults to ../shared/data/speech_commands_dev; ``--set`` adds overrides to every
configuration, e.g. ``--set distill.epochs=2`` for a smoke run.)
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tfkd import verify  # noqa: E402
from tfkd.config import load  # noqa: E402
from tfkd.pipeline.artifacts import RunFolder  # noqa: E402
from tfkd.pipeline.runner import run_pipeline  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PIPELINE = os.path.join(HERE, "..", "pipelines", "kws_micro.yaml")

#: The ≤ 23 KB student (``ds_cnn`` size XS: 32 channels, 4 blocks, first stride 2×4 in
#: (time, frequency)): 8,076 parameters, 21,824 B of int8 .tflite once trained, 21,760 B host arena;
#: trained at that size (no pruning). Every configuration spells out its student and
#: schedule, so that a row means the same whatever ``kws_micro.yaml``'s defaults are.
SMALL = ["student.params={size: xs}", "prune.method=none"]
CONSISTENT = ["distill.mode=consistent"]
MIXUP = ["distill.mixup={prob: 0.5, alpha: 0.4}"]
EPOCHS = {n: [f"distill.epochs={n}"] for n in (32, 64, 128, 256)}

#: name -> (overrides, teacher group: configurations of one group share a run folder).
CONFIGS = {
    "cached, 32 epochs": (SMALL + EPOCHS[32], "resnet"),
    "cached, 64 epochs": (SMALL + EPOCHS[64], "resnet"),
    "cached, 128 epochs": (SMALL + EPOCHS[128], "resnet"),
    "cached, 256 epochs": (SMALL + EPOCHS[256], "resnet"),
    "consistent, 32 epochs": (SMALL + CONSISTENT + EPOCHS[32], "resnet"),
    "consistent+mixup, 32 epochs": (SMALL + CONSISTENT + MIXUP + EPOCHS[32], "resnet"),
    "consistent+mixup, 64 epochs": (SMALL + CONSISTENT + MIXUP + EPOCHS[64], "resnet"),
    "DS-CNN-S pruned, 32 epochs": (["student.params={size: s}", "prune.method=structured"]
                                   + EPOCHS[32], "resnet"),
    "ensemble3 + consistent+mixup, 32 epochs": (SMALL + CONSISTENT + MIXUP + EPOCHS[32]
                                                + ["teacher.ensemble=3"], "ens3"),
    "consistent teacher + consistent+mixup, 32 epochs": (
        SMALL + CONSISTENT + MIXUP + EPOCHS[32] + ["teacher.mode=consistent"], "consistent_teacher"),
}
#: The README's table.
DEFAULT = ("cached, 32 epochs", "cached, 64 epochs", "cached, 128 epochs", "cached, 256 epochs",
           "consistent+mixup, 32 epochs", "consistent+mixup, 64 epochs", "DS-CNN-S pruned, 32 epochs")


def _pooled(acc_test, acc_val, n_test, n_val):
    return (acc_test * n_test + acc_val * n_val) / (n_test + n_val)


def one(data, seed, name, overrides, folder, extra):
    """Runs one configuration for one seed and returns its row."""
    cfg = load(PIPELINE, [f"data.path={data}", f"seed={seed}", "budgets.max_int8_drop=null",
                          "budgets.max_flash_bytes=null", "budgets.max_arena_bytes=null",
                          *overrides, *extra])
    resume = os.path.isdir(folder) and bool(os.listdir(folder))
    start = time.perf_counter()
    m = run_pipeline(cfg, folder, resume=resume, echo=lambda *_: None, tty=False)
    minutes = (time.perf_counter() - start) / 60
    run = RunFolder(folder)
    with open(os.path.join(folder, "timings.json")) as f:
        timings = json.load(f)
    n_val, n_test = m["data"]["clips"]["validation"], m["data"]["clips"]["test"]
    flat = run.load("quantize").flat
    x_val, y_val = run.load("data").arrays("validation")
    val_tflm = verify.score_int8(flat, x_val, y_val)[0]["accuracy_tflm"]
    row = {
        "teacher": _pooled(m["teacher"]["accuracy"], m["teacher"]["val_accuracy"], n_test, n_val),
        "float": _pooled(m["prune"]["accuracy"], _val_of_prune(run, m), n_test, n_val),
        "int8": _pooled(m["quantize"]["accuracy_tflm"], val_tflm, n_test, n_val),
        "flash": m["export"]["tflite_bytes"], "arena": m["export"]["arena_bytes_host"],
        "params": m["prune"]["params"],
        "minutes": sum(timings[k] for k in ("distill", "prune", "quantize", "export")) / 60,
        "wall_minutes": minutes,
        "teacher_minutes": timings.get("teacher", float("nan")) / 60,
        "s_per_epoch": timings["distill"] / cfg.distill.epochs,
    }
    if "ensemble" in m["teacher"]:
        row["members"] = [_pooled(t["accuracy"], t["val_accuracy"], n_test, n_val)
                          for t in m["teacher"]["ensemble"]]
    row["gap"] = row["teacher"] - row["int8"]
    print(f"  seed {seed} {name}: " + " ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    return row


def _val_of_prune(run, m):
    # The pruned (or, with prune.method none, the distilled) student on validation.
    from tfkd.train.fit import accuracy

    if m["prune"].get("method") == "none":
        return m["distill"]["val_accuracy"]
    return accuracy(run.load("prune"), *run.load("data").arrays("validation"))


def _fmt(values, digits=3):
    values = np.asarray(values, float)
    spread = np.std(values, ddof=1) if len(values) > 1 else float("nan")
    return f"{np.mean(values):.{digits}f} ± {spread:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                            "speech_commands_dev"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join("runs", "teacher_gap"))
    ap.add_argument("--configs", nargs="+", default=list(DEFAULT), choices=list(CONFIGS))
    ap.add_argument("--set", dest="extra", action="append", default=[],
                    help="KEY=VALUE added to every configuration")
    args = ap.parse_args()
    data = os.path.abspath(args.data)
    rows = {name: [] for name in args.configs}
    for seed in range(args.seeds):  # seeds outermost: a cut-short run still has whole seeds
        for name in args.configs:
            overrides, group = CONFIGS[name]
            folder = os.path.join(args.out, f"seed{seed}_{group}")
            rows[name].append(one(data, seed, name, overrides, folder, args.extra))
        table(rows, data, seed + 1, args.extra)


def table(rows, data, seeds, extra):
    """Prints the table of the seeds finished so far."""
    print(f"\npipelines/kws_micro.yaml on {data}; {seeds} seed(s); accuracy on validation + "
          "test pooled, mean ± sample std")
    if extra:
        print(f"extra overrides: {' '.join(extra)}")
    print("overrides per configuration:")
    for name in rows:
        print(f"  {name}: {' '.join(CONFIGS[name][0]) or '(none)'}")
    head = (f"\n{'configuration':38s} {'teacher':>13s} {'student float':>13s} {'int8 TFLM':>13s} "
            f"{'gap':>13s} {'params':>6s} {'flash B':>7s} {'arena B':>7s} {'s/epoch':>7s} "
            f"{'min':>5s} {'teacher min':>11s}")
    print(head)
    for name, rs in rows.items():
        col = {k: [r[k] for r in rs] for k in rs[0]}
        print(f"{name:38s} {_fmt(col['teacher']):>13s} {_fmt(col['float']):>13s} "
              f"{_fmt(col['int8']):>13s} {_fmt(col['gap']):>13s} {rs[0]['params']:6d} "
              f"{rs[0]['flash']:7d} {rs[0]['arena']:7d} {np.mean(col['s_per_epoch']):7.2f} "
              f"{np.mean(col['minutes']):5.1f} {np.nanmean(col['teacher_minutes']):11.1f}")
        if "members" in rs[0]:
            members = [a for r in rs for a in r["members"]]
            print(f"{'':38s} each teacher alone: {_fmt(members)} ({len(members)} teachers)")
    print("\nper seed (int8 TFLM, pooled):")
    for name, rs in rows.items():
        print(f"  {name:38s} " + " ".join(f"{r['int8']:.3f}" for r in rs), flush=True)


if __name__ == "__main__":
    main()
