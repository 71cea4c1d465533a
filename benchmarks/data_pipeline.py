"""Clips per second for loading WAV files and for microfrontend feature extraction.

Usage: python benchmarks/data_pipeline.py [FOLDER]   (default: ../shared/data/speech_commands_dev,
or the bundled mini set when that is missing)
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfkd.data import frontend, speech  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "data",
                                                                 "speech_commands_dev")
    if not os.path.isdir(folder):
        folder = os.path.join(HERE, "..", "tfkd", "assets", "speech_commands_mini")
    fp = frontend.FeatureParams()
    start = time.perf_counter()
    index = speech.scan(folder, list(speech.KWS12))
    waves, y, _ = speech.load_waves(index, index.entries, fp.sample_rate, fp.clip_samples)
    load_s = time.perf_counter() - start
    frontend.compute(waves[:8], fp)  # warm-up (op loading, tracing)
    start = time.perf_counter()
    feats = frontend.compute(waves, fp)
    feat_s = time.perf_counter() - start
    print(f"{len(y)} clips from {os.path.abspath(folder)}")
    print(f"load (scan + read + resample): {load_s:.2f} s, {len(y) / load_s:.0f} clips/s")
    print(f"microfrontend via tf.data:     {feat_s:.2f} s, {len(y) / feat_s:.0f} clips/s -> {feats.shape}")


if __name__ == "__main__":
    main()
