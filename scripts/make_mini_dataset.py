"""Builds the bundled mini Speech Commands set from a local copy of the data set.

Usage: python scripts/make_mini_dataset.py SRC DST
Picks per label 3 training, 1 validation and 1 test clip (4 clips for _unknown_) using
SRC's own speaker-disjoint list files, and cuts 1.25 s from each background-noise file.
"""

import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tfkd.data.wav import read_wav  # noqa: E402


def write_pcm16(path, x, rate):
    import wave

    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def main(src, dst):
    with open(os.path.join(src, "validation_list.txt")) as f:
        val = [l.strip() for l in f if l.strip()]
    with open(os.path.join(src, "testing_list.txt")) as f:
        test = [l.strip() for l in f if l.strip()]
    labels = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_unknown_"]
    out_val, out_test = [], []
    for label in labels:
        files = sorted(os.listdir(os.path.join(src, label)))
        rel = [f"{label}/{f}" for f in files]
        train = [r for r in rel if r not in val and r not in test]
        n_train = 2 if label == "_unknown_" else 3
        pick_val = [r for r in rel if r in val][:1]
        pick_test = [r for r in rel if r in test][:1]
        chosen = train[:n_train] + pick_val + pick_test
        out_val += pick_val
        out_test += pick_test
        os.makedirs(os.path.join(dst, label), exist_ok=True)
        for r in chosen:
            shutil.copy(os.path.join(src, r), os.path.join(dst, r))
    with open(os.path.join(dst, "validation_list.txt"), "w") as f:
        f.write("\n".join(out_val) + "\n")
    with open(os.path.join(dst, "testing_list.txt"), "w") as f:
        f.write("\n".join(out_test) + "\n")
    noise_src = os.path.join(src, "_background_noise_")
    os.makedirs(os.path.join(dst, "_background_noise_"), exist_ok=True)
    for name in sorted(os.listdir(noise_src)):
        if name.endswith(".wav"):
            x, rate = read_wav(os.path.join(noise_src, name))
            write_pcm16(os.path.join(dst, "_background_noise_", name), x[rate * 5: rate * 5 + rate * 5 // 4], rate)
    shutil.copy(os.path.join(src, "LICENSE"), os.path.join(dst, "LICENSE"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
