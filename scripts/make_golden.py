"""Writes tests/data/golden/: a tiny int8 keyword model and what it must say on bundled clips.

The model (ds_cnn, 12 channels, 1 block, labels yes/no/up/down) is trained on the bundled
clips with tfkd's own data step and ``fit``, then converted to full int8 with the golden
clips' features as the calibration set. For one clip per label that TFLite Micro gets
right, the golden record keeps the clip's path, its features, and the model's raw int8
outputs; tests/test_golden.py asserts all of it, plus the ``.tflite`` bytes (and that the
same ``.keras`` model converts to the very same bytes).

Usage: python scripts/make_golden.py   (then commit tests/data/golden/)
"""

import hashlib
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tfkd import keras  # noqa: E402
from tfkd.export import micro  # noqa: E402
from tfkd.compress import quantize as q  # noqa: E402
from tfkd.config import DataConfig  # noqa: E402
from tfkd.data import frontend, speech, wav  # noqa: E402
from tfkd.data.augment import AugmentParams  # noqa: E402
from tfkd.models import build  # noqa: E402
from tfkd.pipeline.stages import build_data  # noqa: E402
from tfkd.train.fit import FitSettings, Progress, fit  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MINI = os.path.join(ROOT, "tfkd", "assets", "speech_commands_mini")
OUT = os.path.join(ROOT, "tests", "data", "golden")
LABELS = ("yes", "no", "up", "down")


def features_of(paths, fp):
    """Features of bundled clips, exactly as the data stage and ``tfkd eval`` compute them."""
    clips = np.stack([wav.load_clip(os.path.join(MINI, p), fp.sample_rate, fp.clip_samples)
                      for p in paths])
    return frontend.compute(clips, fp)


def main():
    fp = frontend.FeatureParams()
    data, _ = build_data(DataConfig(path=MINI, labels=LABELS, augment=AugmentParams(views=1)), fp, seed=0)
    keras.utils.set_random_seed(0)
    model = build("ds_cnn", data.input_shape, len(LABELS), channels=12, blocks=1, dropout=0.0)
    fit(model, data, FitSettings(epochs=80, batch_size=4, learning_rate=0.01), seed=0,
        progress=Progress(echo=lambda *_: None))
    index = speech.scan(MINI, list(LABELS))
    entries = [e for e in index.entries if e.path is not None]
    paths = [os.path.relpath(e.path, MINI) for e in entries]
    x = features_of(paths, fp)
    pred = model.predict(x, verbose=0).argmax(-1)
    chosen = []
    for i, label in enumerate(LABELS):  # the first clip of each label the float model gets right
        hits = [j for j, e in enumerate(entries) if e.label == i and pred[j] == i]
        if not hits:
            raise SystemExit(f"make_golden: the model gets no {label!r} clip right; train longer")
        chosen.append(hits[0])
    gx = x[chosen]
    flat = q.convert_int8(model, gx)
    (s, z), _ = micro.io_quantization(flat)
    out = micro.TFLMRunner(flat).run_int8(micro.quantize_input(gx, s, z))
    if list(out.argmax(-1)) != list(range(len(LABELS))):
        raise SystemExit(f"make_golden: the int8 model says {out.argmax(-1)}; train longer")
    os.makedirs(OUT, exist_ok=True)
    model.save(os.path.join(OUT, "kws_tiny.keras"))
    with open(os.path.join(OUT, "kws_tiny.tflite"), "wb") as f:
        f.write(flat)
    np.save(os.path.join(OUT, "features.npy"), gx)
    record = {"labels": list(LABELS), "features": fp.to_dict(),
              "clips": [paths[j] for j in chosen], "expected": list(LABELS),
              "tflite_bytes": len(flat), "tflite_sha256": hashlib.sha256(flat).hexdigest(),
              "int8_outputs": out.astype(int).tolist()}
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {OUT}: {len(flat)} bytes, clips {record['clips']}")


if __name__ == "__main__":
    main()
