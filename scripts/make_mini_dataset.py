"""Builds the quick start's bundled clips (tfkd/assets/speech_commands_yes_no).

Usage: python scripts/make_mini_dataset.py SRC [DST]

SRC is the Speech Commands development subset (``../shared/data/speech_commands_dev``:
the canonical 12-label test-set layout with ``validation_list.txt`` / ``testing_list.txt``).
DST defaults to ``tfkd/assets/speech_commands_yes_no``; it is deleted and rebuilt.

The task is micro_speech's: ``yes``, ``no``, ``_silence_`` and ``_unknown_``. Splits follow
SRC's own speaker-disjoint list files, so no test speaker is heard in training:
  * training clips come from SRC's training part (neither list),
  * validation clips from SRC's validation list (silence clips, which have no speaker, from
    its training part),
  * test clips from SRC's testing list.
``_unknown_`` takes SRC's ``_unknown_`` words plus a few clips of each of the other eight
keywords (renamed ``<word>_<file>``, as SRC names its unknown words). Six 2-second excerpts
of the background-noise recordings are kept for noise augmentation. Picks are a seeded
permutation of the sorted file names, so the bundle is the same on every run.
"""

import os
import shutil
import sys
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DST = os.path.join(HERE, "..", "tfkd", "assets", "speech_commands_yes_no")
OTHER_WORDS = ("up", "down", "left", "right", "on", "off", "stop", "go")
#: Clips per (label, split). ~32 KB a clip: about 15 MB in all.
COUNTS = {
    "yes": {"train": 92, "validation": 12, "test": 22},
    "no": {"train": 92, "validation": 12, "test": 24},
    "_silence_": {"train": 40, "validation": 8, "test": 20},
    "_unknown_": {"train": 64, "validation": 12, "test": 19},
}
#: Per other keyword, clips added to ``_unknown_`` (train, validation, test).
OTHER_COUNTS = {"train": 4, "validation": 0, "test": 1}
NOISE_START_S, NOISE_SECONDS = 5, 2
SEED = 0


def _read_list(src, name):
    with open(os.path.join(src, name)) as f:
        return {line.strip() for line in f if line.strip()}


def _split_of(rel, val, test):
    return "validation" if rel in val else "test" if rel in test else "train"


def _pick(rng, items, n, what):
    if len(items) < n:
        raise SystemExit(f"{what}: only {len(items)} clips in the source, {n} needed")
    order = rng.permutation(len(items))
    return sorted(items[i] for i in order[:n])


def _noise_excerpt(src, dst):
    with wave.open(src, "rb") as r:
        rate = r.getframerate()
        r.setpos(NOISE_START_S * rate)
        frames = r.readframes(NOISE_SECONDS * rate)
        params = r.getparams()
    with wave.open(dst, "wb") as w:
        w.setnchannels(params.nchannels)
        w.setsampwidth(params.sampwidth)
        w.setframerate(rate)
        w.writeframes(frames)


def build(src, dst):
    """Copies the chosen clips into ``dst``; returns ``[(bundled path, source path, split)]``."""
    val, test = _read_list(src, "validation_list.txt"), _read_list(src, "testing_list.txt")
    rng = np.random.default_rng(SEED)
    chosen = []  # (dst rel, src rel, split)
    for label, counts in COUNTS.items():
        rels = [f"{label}/{f}" for f in sorted(os.listdir(os.path.join(src, label)))
                if f.endswith(".wav")]
        by_split = {s: [r for r in rels if _split_of(r, val, test) == s] for s in counts}
        if label == "_silence_":
            # The source's silence clips are all training or test; none has a speaker, so
            # validation borrows from the training part (disjoint picks).
            train = _pick(rng, by_split["train"], counts["train"] + counts["validation"], label)
            vpos = set(rng.permutation(len(train))[:counts["validation"]].tolist())
            chosen += [(r, r, "validation" if i in vpos else "train") for i, r in enumerate(train)]
            chosen += [(r, r, "test") for r in _pick(rng, by_split["test"], counts["test"], label)]
            continue
        for split, n in counts.items():
            chosen += [(r, r, split) for r in _pick(rng, by_split[split], n, f"{label}/{split}")]
    for word in OTHER_WORDS:
        rels = [f"{word}/{f}" for f in sorted(os.listdir(os.path.join(src, word)))]
        for split, n in OTHER_COUNTS.items():
            part = [r for r in rels if _split_of(r, val, test) == split]
            chosen += [(f"_unknown_/{word}_{os.path.basename(r)}", r, split)
                       for r in _pick(rng, part, n, f"{word}/{split}")] if n else []
    if os.path.isdir(dst):
        shutil.rmtree(dst)
    for d, s, _ in chosen:
        os.makedirs(os.path.dirname(os.path.join(dst, d)), exist_ok=True)
        shutil.copyfile(os.path.join(src, s), os.path.join(dst, d))
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        with open(os.path.join(dst, name), "w") as f:
            f.write("".join(f"{d}\n" for d, _, sp in sorted(chosen) if sp == split))
    os.makedirs(os.path.join(dst, "_background_noise_"))
    noise = sorted(f for f in os.listdir(os.path.join(src, "_background_noise_")) if f.endswith(".wav"))
    for name in noise:
        _noise_excerpt(os.path.join(src, "_background_noise_", name),
                       os.path.join(dst, "_background_noise_", name))
    shutil.copyfile(os.path.join(src, "LICENSE"), os.path.join(dst, "LICENSE"))
    _write_readme(dst, chosen, noise, val, test)
    return chosen


def _write_readme(dst, chosen, noise, val, test):
    table = {}
    for d, _, split in chosen:
        label = d.split("/")[0]
        table.setdefault(label, {}).setdefault(split, 0)
        table[label][split] += 1
    rows = "\n".join(f"| `{l}` | {c.get('train', 0)} | {c.get('validation', 0)} | "
                     f"{c.get('test', 0)} |" for l, c in table.items())
    files = "\n".join(f"{d} <- {s} ({split}; dev {_split_of(s, val, test)})"
                      for d, s, split in sorted(chosen))
    text = f"""# Speech Commands yes/no (bundled for the quick start)

{len(chosen)} one-second 16 kHz PCM16 clips and {len(noise)} {NOISE_SECONDS}-second background-noise
excerpts from the Speech Commands data set v0.02 (Warden 2018, arXiv:1804.03209), licensed
under Creative Commons BY 4.0 (see LICENSE). The clips are unmodified copies; the noise
excerpts are seconds {NOISE_START_S}–{NOISE_START_S + NOISE_SECONDS} of each official
`_background_noise_` recording.

The task is micro_speech's four labels: `yes`, `no`, `_silence_` and `_unknown_` (other
words: the source's `_unknown_` words plus a few clips of up, down, left, right, on, off,
stop and go, renamed `<word>_<file>`).

| label | train | validation | test |
|---|---|---|---|
{rows}

Splits are speaker-disjoint: they follow the development subset's own list files
(`../shared/data/speech_commands_dev`, itself a speaker-based half of the data set's canonical
test set). Training clips come from the part of the development subset in neither list,
validation clips from its `validation_list.txt` (silence clips, which have no speaker, from
its training part), test clips from its `testing_list.txt`. **These clips are no longer
unseen for evaluations on the development subset**: a model trained on this bundle has
heard the training clips listed below.

Built, deterministically, by `python scripts/make_mini_dataset.py ../shared/data/speech_commands_dev`.

Citation: Warden P. Speech Commands: A public dataset for single-word speech recognition, 2017.

## The clips (bundled path <- development-subset path (split here; split there))

```
{files}
```
"""
    with open(os.path.join(dst, "README.md"), "w") as f:
        f.write(text)


def main(argv):
    if not 1 <= len(argv) <= 2:
        raise SystemExit(__doc__.split("\n\n")[1])
    dst = argv[1] if len(argv) == 2 else DEFAULT_DST
    chosen = build(argv[0], dst)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(dst) for f in fs)
    print(f"{dst}: {len(chosen)} clips, {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
