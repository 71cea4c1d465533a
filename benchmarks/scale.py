"""Memory and speed of the pipeline as the data grows: peak RSS, data-stage clips/s, training s/epoch.

For each N it builds a Speech-Commands-layout folder of N clips out of a small one (links
to the same WAV files under new speaker names, so the hash split spreads them over
train/validation/test), runs ``tfkd run`` on it in a subprocess with one epoch per
training stage, and reads the child's peak resident memory from the kernel (``wait4``).

Usage:
  python benchmarks/scale.py [--sizes 2000,8000,32000] [--source FOLDER]
                             [--pipeline pipelines/kws_micro.yaml] [--stop-after data]
                             [--work /tmp/tfkd-scale] [--set KEY=VALUE ...]

Targets on 2 cores (issue 10): peak RSS <= 3 GB at every N and growing < 0.5 GB from 4k
to 16k clips; data stage >= 500 clips/s with 4 views.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_SOURCE = os.path.join(ROOT, "..", "shared", "data", "speech_commands_dev")
ONE_EPOCH = ("teacher.epochs=1", "distill.epochs=1", "prune.epochs=1")
_DONE = re.compile(r"^\[(\w+)\] done in ([0-9.]+) s")


def _wavs(folder):
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(".wav"))


def build_folder(source, n, dest):
    """Links ``n`` clips of ``source`` into ``dest`` under new speaker names.

    Copy ``c`` of ``word/<speaker>_nohash_<i>.wav`` is ``word/c<c>x<speaker>_nohash_<i>.wav``;
    the background-noise folder is linked once; list files are left out so that the
    speaker hash decides each clip's split. Returns the number of clips linked.
    """
    source = os.path.abspath(source)
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    labels = [d for d in sorted(os.listdir(source)) if os.path.isdir(os.path.join(source, d))
              and d != "_background_noise_" and _wavs(os.path.join(source, d))]
    per_label = {d: _wavs(os.path.join(source, d)) for d in labels}
    # Round-robin over the labels, so that any N has every label in proportion.
    files = [(d, per_label[d][j]) for j in range(max(map(len, per_label.values()), default=0))
             for d in labels if j < len(per_label[d])]
    if not files:
        raise SystemExit(f"scale: no <label>/*.wav clips in {source}")
    noise = os.path.join(source, "_background_noise_")
    if os.path.isdir(noise):
        os.symlink(noise, os.path.join(dest, "_background_noise_"))
    for d in labels:
        os.makedirs(os.path.join(dest, d))
    for i in range(n):
        d, f = files[i % len(files)]
        os.symlink(os.path.join(source, d, f), os.path.join(dest, d, f"c{i // len(files)}x{f}"))
    return n


def run_one(folder, out, pipeline, stop_after, overrides):
    """Runs ``tfkd run`` in a child process; returns (rc, peak RSS in bytes, stage seconds, log)."""
    if os.path.isdir(out):
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "tfkd.cli", "run", pipeline, "--out", out, "--verbose",
           "--set", f"data.path={folder}"]
    for o in (ONE_EPOCH if stop_after != "data" else ()) + tuple(overrides):
        cmd += ["--set", o]
    if stop_after:
        cmd += ["--stop-after", stop_after]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    log = proc.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stages = {m.group(1): float(m.group(2)) for m in map(_DONE.match, log.splitlines()) if m}
    stages["wall"] = time.perf_counter() - start
    return proc.returncode, usage.ru_maxrss * 1024, stages, log


def _clips_stored(out):
    path = os.path.join(out, "metrics.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        clips = json.load(f).get("data", {}).get("clips", {})
    return sum(clips.values()) if isinstance(clips, dict) else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="2000,8000,32000", help="clip counts, comma-separated")
    p.add_argument("--source", default=DEFAULT_SOURCE, help="a Speech-Commands-layout folder")
    p.add_argument("--pipeline", default=os.path.join(ROOT, "pipelines", "kws_micro.yaml"))
    p.add_argument("--stop-after", default=None, help="e.g. data: time the data stage alone")
    p.add_argument("--work", default="/tmp/tfkd-scale", help="folder for the linked data and runs")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows = []
    for n in sizes:
        folder = os.path.join(args.work, f"data{n}")
        out = os.path.join(args.work, f"run{n}")
        build_folder(args.source, n, folder)
        rc, rss, stages, log = run_one(folder, out, args.pipeline, args.stop_after, args.overrides)
        if rc != 0:
            tail = "\n".join(log.strip().splitlines()[-3:])
            print(f"N={n}: tfkd run exited {rc}:\n{tail}", file=sys.stderr)
        stored = _clips_stored(out) or n
        data_s = stages.get("data")
        rows.append((n, rss, stored / data_s if data_s else float("nan"), stages, rc))
        shutil.rmtree(folder, ignore_errors=True)
        print(_row(rows[-1]), flush=True)
    print()
    print("| clips | peak RSS | data stage | clips/s | teacher s | distill s | prune s | quantize s | exit |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(_row(r))


def _row(r):
    n, rss, rate, stages, rc = r

    def s(name):
        return f"{stages[name]:.1f}" if name in stages else "-"

    return (f"| {n} | {rss / 2 ** 30:.2f} GB | {s('data')} s | {rate:.0f} | {s('teacher')} | "
            f"{s('distill')} | {s('prune')} | {s('quantize')} | {rc} |")


if __name__ == "__main__":
    main()
