"""Single process vs two local workers: the same pipeline, the same figures?

Runs a pipeline (default: the quick start) once in one process and once on two local
workers (``TF_CONFIG`` on localhost ports, ``distribute.strategy=multi_worker``), then
prints every accuracy and byte count of both ``metrics.json`` side by side, and the
per-epoch training losses of both runs with their largest difference per stage.

Usage::

    python benchmarks/multiworker_parity.py [PIPELINE] [--out DIR] [--set KEY=VALUE ...]

Two workers on one machine share its cores, so the two-worker run is slower; the point
is the numbers. Exit status 1 when an accuracy differs by more than ``--points``.

``--noise-floor`` adds a third run: one process again, with ``TF_ENABLE_ONEDNN_OPTS=0``
(TensorFlow's plain kernels instead of oneDNN's: the same maths, other floating-point
rounding). Two workers sum gradients and batch statistics in another order than one
process; how far a rounding-only change moves the figures shows how close any
distributed run can be expected to come.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

from tfkd import distribute  # (imports no TensorFlow: tfkd.lazy_tf)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCH = re.compile(r"^\s*(\S.*?) epoch (\d+): (.*)$")


def _command(pipeline, out, sets):
    cmd = [sys.executable, "-m", "tfkd.cli", "run", pipeline, "--out", out, "--verbose"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def _run_single(pipeline, out, sets, **extra_env):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **extra_env)
    env.pop("TF_CONFIG", None)
    p = subprocess.run(_command(pipeline, out, sets), env=env, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"single process failed:\n{(p.stdout + p.stderr)[-3000:]}")
    return p.stdout + p.stderr


def _run_workers(pipeline, out, sets, workers=2):
    procs = []
    for tf_config in distribute.local_cluster(workers):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=tf_config)
        procs.append(subprocess.Popen(
            _command(pipeline, out, list(sets) + ["distribute.strategy=multi_worker"]),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        sys.exit("multi-worker run failed:\n" + "\n".join(l[-3000:] for l in logs))
    return logs[0]


def _figures(metrics):
    """``{stage.key: value}`` of every accuracy and byte count."""
    out = {}
    for stage, values in metrics.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                    "accuracy" in key or key.endswith("bytes")):
                out[f"{stage}.{key}"] = value
    return out


def _losses(log):
    """``{label: [loss per epoch]}`` from the per-epoch lines of a verbose run."""
    out = {}
    for line in log.splitlines():
        m = EPOCH.match(line)
        if m:
            values = dict(kv.split("=") for kv in m.group(3).split())
            out.setdefault(m.group(1), []).append(float(values["loss"]))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pipeline", nargs="?", default=os.path.join(ROOT, "pipelines", "kws_quickstart.yaml"))
    ap.add_argument("--out", default=None, help="folder for both runs (default: a temporary one)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--points", type=float, default=1.0,
                    help="largest allowed accuracy difference, in points (default 1)")
    ap.add_argument("--noise-floor", action="store_true",
                    help="also run one process with TF_ENABLE_ONEDNN_OPTS=0 (rounding only)")
    args = ap.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="tfkd-parity-")
    single_dir, multi_dir = os.path.join(out, "single"), os.path.join(out, "two_workers")
    print(f"single process: {' '.join(_command(args.pipeline, single_dir, args.sets))}", flush=True)
    single_log = _run_single(args.pipeline, single_dir, args.sets)
    print(f"two workers:    TF_CONFIG=... "
          f"{' '.join(_command(args.pipeline, multi_dir, args.sets + ['distribute.strategy=multi_worker']))}",
          flush=True)
    multi_log = _run_workers(args.pipeline, multi_dir, args.sets)
    noise_dir, noise_log = os.path.join(out, "single_no_onednn"), ""
    if args.noise_floor:
        print(f"noise floor:    TF_ENABLE_ONEDNN_OPTS=0 "
              f"{' '.join(_command(args.pipeline, noise_dir, args.sets))}", flush=True)
        noise_log = _run_single(args.pipeline, noise_dir, args.sets, TF_ENABLE_ONEDNN_OPTS="0")

    def metrics(folder):
        with open(os.path.join(folder, "metrics.json")) as f:
            return json.load(f)

    single, multi = metrics(single_dir), metrics(multi_dir)
    print(f"\nreplicas: single {single['distribute']}, two workers {multi['distribute']}\n")
    a, b = _figures(single), _figures(multi)
    c = _figures(metrics(noise_dir)) if args.noise_floor else {}
    worst = 0.0
    fmt = (lambda v: "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v)))
    print(f"{'metric':34s} {'single':>10s} {'2 workers':>10s} {'diff':>9s}"
          + (f" {'no oneDNN':>10s} {'diff':>9s}" if c else ""))
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        diff = (y - x) if x is not None and y is not None else float("nan")
        if "accuracy" in key and x is not None and y is not None:
            worst = max(worst, abs(diff) * 100)
        line = f"{key:34s} {fmt(x):>10s} {fmt(y):>10s} {diff:>9.4f}"
        if c:
            z = c.get(key)
            line += f" {fmt(z):>10s} {(z - x) if z is not None and x is not None else float('nan'):>9.4f}"
        print(line)
    la, lb, lc = _losses(single_log), _losses(multi_log), _losses(noise_log)
    print(f"\n{'training run':14s} {'epochs':>6s} {'loss ep1 single/2w':>24s} "
          f"{'last single/2w':>22s} {'max |diff|':>11s}" + (f" {'no oneDNN':>10s}" if lc else ""))
    for label in la:
        s, m = la[label], lb.get(label, [])
        n = min(len(s), len(m))
        if not n:
            print(f"{label:14s} no two-worker epochs")
            continue
        d = max(abs(u - v) for u, v in zip(s[:n], m[:n]))
        line = (f"{label:14s} {n:6d} {s[0]:>11.6f}/{m[0]:<11.6f} {s[n - 1]:>10.6f}/{m[n - 1]:<10.6f} "
                f"{d:11.2e}")
        if lc.get(label):
            line += f" {max(abs(u - v) for u, v in zip(s, lc[label])):10.2e}"
        print(line)
    print(f"\nlargest accuracy difference: {worst:.2f} points (allowed {args.points}); runs in {out}")
    return 0 if worst <= args.points else 1


if __name__ == "__main__":
    sys.exit(main())
