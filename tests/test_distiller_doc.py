"""docs/distiller.md: its code blocks run, and its two tfkd spellings train the same student."""

import os
import re

import numpy as np
import pytest

from tfkd._keras import keras

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "distiller.md")


def _blocks():
    return re.findall(r"```python\n(.*?)```", open(DOC).read(), re.S)


def _models(k, seed=0):
    k.utils.set_random_seed(seed)
    teacher = k.Sequential([k.Input((8,)), k.layers.Dense(16, activation="relu"),
                            k.layers.Dense(6, activation="relu", name="t_feat"), k.layers.Dense(3)])
    student = k.Sequential([k.Input((8,)), k.layers.Dense(6, activation="relu", name="s_feat"),
                            k.layers.Dense(3)])
    return teacher, student


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0.5).astype("int32")


@pytest.mark.slow
def test_tfkd_blocks_run_and_agree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = _blocks()
    assert len(blocks) == 3 and "keras.distillation" in blocks[0]
    x, y = _data()
    students = []
    for i, code in enumerate(blocks[1:]):
        teacher, student = _models(keras)
        keras.utils.set_random_seed(1)
        ns = {"teacher": teacher, "student": student, "x_train": x, "y_train": y}
        if i == 1:  # the third block reuses the second block's imports
            exec(blocks[1].split("distiller =")[0], ns)
        exec(code, ns)
        students.append(student.get_weights())
    for a, b in zip(*students):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert os.path.isfile(tmp_path / "student.keras")


def test_keras3_block_runs():
    keras3 = pytest.importorskip("keras")
    if not hasattr(keras3, "distillation"):
        pytest.skip("keras.distillation needs Keras >= 3.12")
    teacher, student = _models(keras3)
    x, y = _data()
    ns = {"teacher": teacher, "student": student, "x_train": x, "y_train": y}
    exec(_blocks()[0], ns)
    assert ns["distiller"].student is student
