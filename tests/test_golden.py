"""Golden regression: a checked-in int8 model on bundled clips (see scripts/make_golden.py)."""

import hashlib
import json
import os

import numpy as np
import pytest

from tfkd import keras, verify
from tfkd.export import micro
from tfkd.compress import quantize as q
from tfkd.data import frontend, wav

ROOT = os.path.join(os.path.dirname(__file__), "..")
GOLDEN = os.path.join(os.path.dirname(__file__), "data", "golden")
MINI = os.path.join(ROOT, "tfkd", "assets", "speech_commands_mini")
with open(os.path.join(GOLDEN, "golden.json")) as f:
    RECORD = json.load(f)
with open(os.path.join(GOLDEN, "kws_tiny.tflite"), "rb") as f:
    FLAT = f.read()
FEATURES = np.load(os.path.join(GOLDEN, "features.npy"))


def test_the_model_file_is_the_recorded_one():
    assert len(FLAT) == RECORD["tflite_bytes"]
    assert hashlib.sha256(FLAT).hexdigest() == RECORD["tflite_sha256"]
    assert verify.check_int8(FLAT) == ["CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"]


def test_bundled_clips_give_the_recorded_features():
    fp = frontend.FeatureParams.from_dict(RECORD["features"])
    clips = np.stack([wav.load_clip(os.path.join(MINI, p), fp.sample_rate, fp.clip_samples)
                      for p in RECORD["clips"]])
    np.testing.assert_array_equal(frontend.compute(clips, fp), FEATURES)


def test_litert_says_the_recorded_labels_and_outputs():
    (s, z), _ = micro.io_quantization(FLAT)
    out = micro.LiteRTRunner(FLAT).run_int8(micro.quantize_input(FEATURES, s, z))
    assert [RECORD["labels"][i] for i in out.argmax(-1)] == RECORD["expected"]
    assert np.abs(out.astype(int) - np.array(RECORD["int8_outputs"])).max() <= 1


@pytest.mark.skipif(not micro.tflm_available(), reason="tflite-micro not installed")
def test_tflite_micro_says_the_recorded_labels_and_outputs():
    (s, z), _ = micro.io_quantization(FLAT)
    out = micro.TFLMRunner(FLAT).run_int8(micro.quantize_input(FEATURES, s, z))
    assert out.astype(int).tolist() == RECORD["int8_outputs"]  # recorded from TFLM itself
    assert [RECORD["labels"][i] for i in out.argmax(-1)] == RECORD["expected"] == ["yes", "no", "up", "down"]


def test_the_keras_model_converts_to_the_same_bytes():
    model = keras.models.load_model(os.path.join(GOLDEN, "kws_tiny.keras"), compile=False)
    assert q.convert_int8(model, FEATURES) == FLAT
