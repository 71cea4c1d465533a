"""Regenerates the README's result sections from the commands printed beside them.

Each job runs one command the README shows and replaces the README block between
``<!-- figures:NAME -->`` and ``<!-- /figures:NAME -->`` with: the command, the commit and
machine it ran on, and the command's own output (its closing table), verbatim. So every
accuracy, byte count and time in those blocks is what the stated command printed at the
stated commit; wall-clock times are this machine's.

Usage: python benchmarks/readme_figures.py [--only flagship,quickstart,...] [--list]
Jobs run in the order listed; each finished job updates the README at once.
"""

import argparse
import datetime
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
README = os.path.join(ROOT, "README.md")
DEV = "../shared/data/speech_commands_dev"

#: name → (command, how many closing lines of its output the README shows)
JOBS = {
    "quickstart": ("tfkd run pipelines/kws_quickstart.yaml --out runs/readme/kws_quickstart", 14),
    "flagship": (f"tfkd run pipelines/kws_micro.yaml --set data.path={DEV} "
                 "--out runs/readme/kws_micro", 14),
    "peer": ("python benchmarks/peer_recipe.py", 12),
    "ablation": ("python benchmarks/ablation.py --out runs/readme/ablation", 14),
    "kd_methods": ("python benchmarks/kd_methods.py", 16),
    "overhead": ("python benchmarks/distill_overhead.py", 4),
}


def _git(*args):
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip()


def _block(name, command, output, seconds):
    commit = _git("rev-parse", "--short=10", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "tfkd", "models",
                 "pipelines", "benchmarks")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    where = (f"commit `{commit}`{' + uncommitted changes' if dirty else ''}, "
             f"{os.cpu_count()} CPU cores, {stamp}, {seconds / 60:.1f} min wall on this machine")
    return (f"<!-- figures:{name} -->\n`{command}` ({where}):\n\n```\n{output.rstrip()}\n```\n"
            f"<!-- /figures:{name} -->")


def update_readme(name, block):
    """Replaces the README block of ``name``; refuses a README without its markers."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    pattern = re.compile(rf"<!-- figures:{re.escape(name)} -->.*?<!-- /figures:{re.escape(name)} -->",
                         re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no <!-- figures:{name} --> block")
    text = pattern.sub(lambda _: block, text)
    tmp = README + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, README)


def run_job(name):
    command, tail = JOBS[name]
    print(f"[{name}] {command}", flush=True)
    start = time.perf_counter()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    log = os.path.join(ROOT, "runs", "readme", f"{name}.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "w", encoding="utf-8") as f:
        f.write(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"[{name}] failed with exit {proc.returncode}; see {log}")
    lines = [l for l in proc.stdout.splitlines() if l.strip()]
    update_readme(name, _block(name, command, "\n".join(lines[-tail:]), seconds))
    print(f"[{name}] done in {seconds:.0f} s; README updated", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=",".join(JOBS), help="comma-separated job names")
    ap.add_argument("--list", action="store_true", help="list the jobs and their commands")
    args = ap.parse_args()
    if args.list:
        for name, (command, _) in JOBS.items():
            print(f"{name:12s} {command}")
        return
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in JOBS]
    if unknown:
        raise SystemExit(f"Unknown job {unknown[0]!r}. Available: {', '.join(JOBS)}")
    for name in names:
        run_job(name)


if __name__ == "__main__":
    sys.exit(main())
