"""Regenerates the README's result sections from the commands printed beside them.

Each job runs one command the README shows and replaces the README block between
``<!-- figures:NAME -->`` and ``<!-- /figures:NAME -->`` with: the command, the commit and
machine it ran on, and the command's own output (its closing table), verbatim. So every
accuracy, byte count and time in those blocks is what the stated command printed at the
stated commit; wall-clock times are this machine's.

Usage: python benchmarks/readme_figures.py [--only flagship,quickstart,...] [--list]
       python benchmarks/readme_figures.py --from-logs [--only ...]
Jobs run in the order listed; each finished job updates the README at once and keeps its
record (command, commit, output) in ``runs/readme/<job>.json``; ``--from-logs`` rewrites
the README blocks from those records without running anything.
"""

import argparse
import datetime
import json
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
    "kd_methods": ("python benchmarks/kd_methods.py --methods 'no teacher,KD,DKD,DIST'", 16),
    "teacher_gap": ("python benchmarks/teacher_gap.py --out runs/readme/teacher_gap", 28),
    "overhead": ("python benchmarks/distill_overhead.py", 4),
}


def _git(*args):
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip()


def _record(name, command, output, seconds):
    commit = _git("rev-parse", "--short=10", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "--", "tfkd", "models",
                      "pipelines", "benchmarks"))
    return {"name": name, "command": command, "commit": commit, "dirty": dirty,
            "cores": os.cpu_count(), "seconds": seconds, "output": output,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}


def _block(rec):
    where = (f"commit `{rec['commit']}`{' + uncommitted changes' if rec['dirty'] else ''}, "
             f"{rec['cores']} CPU cores, {rec['date']}, {rec['seconds'] / 60:.1f} min wall "
             "on this machine")
    return (f"<!-- figures:{rec['name']} -->\n`{rec['command']}` ({where}):\n\n"
            f"```\n{rec['output'].rstrip()}\n```\n<!-- /figures:{rec['name']} -->")


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


def run_job(name, readme=True):
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
    rec = _record(name, command, "\n".join(lines[-tail:]), seconds)
    with open(os.path.join(ROOT, "runs", "readme", f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(rec, f, indent=1)
    if readme:
        update_readme(name, _block(rec))
    print(f"[{name}] done in {seconds:.0f} s{'; README updated' if readme else ''}", flush=True)


def from_log(name):
    path = os.path.join(ROOT, "runs", "readme", f"{name}.json")
    if not os.path.exists(path):
        raise SystemExit(f"[{name}] no record {path}: run the job first")
    with open(path, encoding="utf-8") as f:
        update_readme(name, _block(json.load(f)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=",".join(JOBS), help="comma-separated job names")
    ap.add_argument("--list", action="store_true", help="list the jobs and their commands")
    ap.add_argument("--no-readme", action="store_true",
                    help="keep the records only; the README is left untouched")
    ap.add_argument("--from-logs", action="store_true",
                    help="rewrite the README blocks from the saved records, running nothing")
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
        from_log(name) if args.from_logs else run_job(name, readme=not args.no_readme)


if __name__ == "__main__":
    sys.exit(main())
