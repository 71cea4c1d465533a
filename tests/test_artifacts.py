import json
import os

import numpy as np
import pytest

from tfkd.pipeline import artifacts
from tfkd.pipeline.artifacts import Firmware, Quantized, RunFolder, Trained


def test_data_round_trips_bit_exactly(tmp_path, tiny_data):
    artifacts.save("data", str(tmp_path), tiny_data)
    back = artifacts.load("data", str(tmp_path))
    assert back.labels == tiny_data.labels and back.features == tiny_data.features
    for a, b in zip(back.train_arrays(), tiny_data.train_arrays()):
        np.testing.assert_array_equal(a, b)
    for split in ("validation", "test"):
        for a, b in zip(back.arrays(split), tiny_data.arrays(split)):
            np.testing.assert_array_equal(a, b)
    assert artifacts.load_labels(str(tmp_path)) == ["a", "b", "c"]


@pytest.mark.parametrize("stage,filename", [("teacher", "teacher.keras"), ("distill", "student.keras"),
                                            ("prune", "student.keras")])
def test_trained_models_round_trip(tmp_path, make_cnn, stage, filename):
    model = make_cnn()
    artifacts.save(stage, str(tmp_path), Trained(model=model, history={"loss": [1.0, 0.5]}))
    assert sorted(os.listdir(tmp_path)) == sorted([filename, "history.json"])
    back = artifacts.load(stage, str(tmp_path))
    x = np.ones((2, 6, 6, 1), np.float32)
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    assert artifacts.load_history(str(tmp_path)) == {"loss": [1.0, 0.5]}


def test_quantized_and_firmware(tmp_path):
    q = Quantized(flat=b"TFL3bytes", predictions=np.array([2, 0, 1]),
                  verification={"ops": ["CONV_2D"], "arena_bytes_host": 1234})
    os.makedirs(tmp_path / "q")
    artifacts.save("quantize", str(tmp_path / "q"), q)
    back = artifacts.load("quantize", str(tmp_path / "q"))
    assert back.flat == q.flat and back.verification == q.verification
    np.testing.assert_array_equal(back.predictions, q.predictions)
    os.makedirs(tmp_path / "e")
    artifacts.save("export", str(tmp_path / "e"), Firmware(files={"m.cc": "int x;", "m.tflite": b"\0\1"},
                                                           kinds={"cc": "m.cc", "tflite": "m.tflite"}))
    assert (tmp_path / "e" / "m.cc").read_text() == "int x;"
    assert (tmp_path / "e" / "m.tflite").read_bytes() == b"\0\1"


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(artifacts.ArtifactError, match=r"no model_int8.tflite; is it a finished tfkd run\?"):
        artifacts.load_quantized(str(tmp_path))


def test_run_folder_records_metrics_and_timings(tmp_path):
    run = RunFolder(tmp_path)
    assert not run.is_run() and run.read_metrics() == {} and run.record("data") is None
    run.write_resolved({"name": "x"})
    assert run.is_run()
    os.makedirs(run.partial("data"))
    run.write_record(run.partial("data"), "abc", {"views": 2})
    os.replace(run.partial("data"), run.stage("data"))
    assert run.record("data") == {"key": "abc", "metrics": {"views": 2}}
    run.write_metrics({"data": {"views": 2}})
    assert run.read_metrics() == {"data": {"views": 2}}
    run.add_timings({"data": 1.0})
    run.add_timings({"teacher": 2.0})
    assert json.loads((tmp_path / "timings.json").read_text()) == {"data": 1.0, "teacher": 2.0}
    assert run.history("teacher") is None and run.test_predictions() is None
    assert run.log_dir("teacher") == os.path.join(str(tmp_path), "logs", "teacher")


def test_a_run_folders_model_with_code_is_refused(tmp_path):
    # A run folder handed over by someone else (--resume, tfkd eval): a Lambda layer in
    # its student.keras is Python code and must not be loaded.
    from tfkd import keras

    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Lambda(lambda t: t * 2.0, name="code")(inp))
    model.save(str(tmp_path / "student.keras"))
    with pytest.raises(artifacts.ArtifactError, match=r"Lambda layer \(code\)"):
        artifacts.load("distill", str(tmp_path))
