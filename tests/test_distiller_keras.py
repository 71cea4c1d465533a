"""The Distiller behaves like any Keras model: each test compares with plain Keras."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfkd
from tfkd._keras import keras


def _ce():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _twin(model):
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin


def _regularized_pair(l2=0.1):
    keras.utils.set_random_seed(0)
    reg = keras.regularizers.L2(l2)
    teacher = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(16, activation="relu"),
                                keras.layers.Dense(3)])
    student = keras.Sequential([keras.layers.Input((8,)),
                                keras.layers.Dense(4, activation="relu", kernel_regularizer=reg),
                                keras.layers.Dense(3, kernel_regularizer=reg)])
    return teacher, student


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_small_gradients_equal_plain_keras(tiny_pair, mixed_precision):
    _, _, x, y = tiny_pair
    teacher, student = _regularized_pair(0.0)  # built under mixed_float16: float16 logits
    plain = _twin(student)
    before = student.get_weights()[0].copy()
    tiny = x * 1e-7  # gradients this small underflow in float16 unless the loss is scaled
    plain.compile(optimizer=keras.optimizers.SGD(1.0), loss=_ce())
    plain.fit(tiny, y, batch_size=len(x), epochs=1, verbose=0)
    d = tfkd.Distiller(student=student, teacher=teacher, alpha=1.0)
    d.compile(optimizer=keras.optimizers.SGD(1.0))
    assert isinstance(d.optimizer, keras.mixed_precision.LossScaleOptimizer)
    d.fit(tiny, y, batch_size=len(x), epochs=1, verbose=0)
    plain_step = plain.get_weights()[0] - before
    assert np.abs(plain_step).max() > 1e-9  # Keras' own update is not zero ...
    np.testing.assert_allclose(student.get_weights()[0] - before, plain_step, rtol=1e-6)  # ... nor ours


def test_mixed_precision_with_regularizers_logs_keras_loss(tiny_pair, mixed_precision):
    _, _, x, y = tiny_pair
    teacher, student = _regularized_pair()
    plain = _twin(student)
    plain.compile(optimizer="sgd", loss=_ce())
    d = tfkd.Distiller(student=student, teacher=teacher, alpha=1.0)
    d.compile(optimizer="sgd")
    ours = d.evaluate(x, y, batch_size=16, return_dict=True, verbose=0)["loss"]
    np.testing.assert_allclose(ours, plain.evaluate(x, y, batch_size=16, verbose=0), rtol=1e-3)
    hist = tfkd.Distiller(student=student, teacher=teacher, alpha=0.5)
    hist.compile(optimizer="sgd")
    assert np.isfinite(hist.fit(x, y, batch_size=16, epochs=1, verbose=0).history["loss"]).all()


def test_model_checkpoint_defaults_keras_format(tiny_pair, tmp_path):
    teacher, student, x, y = tiny_pair
    d = tfkd.Distiller(student=student, teacher=teacher, temperature=3.0, alpha=0.2)
    d.compile(optimizer="adam", metrics=["sparse_categorical_accuracy"])
    path = tmp_path / "ckpt.keras"
    d.fit(x, y, epochs=2, verbose=0, callbacks=[keras.callbacks.ModelCheckpoint(str(path))])
    again = keras.models.load_model(path)
    assert isinstance(again, tfkd.Distiller)
    np.testing.assert_array_equal(again.predict(x, verbose=0), d.predict(x, verbose=0))
    # the optimizer state came back too: training resumes where it stopped
    assert int(again.optimizer.iterations.numpy()) == int(d.optimizer.iterations.numpy()) == 4  # 2 epochs x 2 batches


def test_h5_checkpoint_fails_like_plain_keras_and_weights_only_works(tiny_pair, tmp_path):
    teacher, student, x, y = tiny_pair

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, inputs):
            return self.dense(inputs)

    plain = Sub()
    plain.compile(optimizer="adam", loss=_ce())
    with pytest.raises(NotImplementedError, match="subclassed"):
        plain.fit(x, y, epochs=1, verbose=0,
                  callbacks=[keras.callbacks.ModelCheckpoint(str(tmp_path / "p.h5"))])
    d = tfkd.Distiller(student=student, teacher=teacher)
    d.compile(optimizer="adam")
    with pytest.raises(NotImplementedError) as err:
        d.fit(x, y, epochs=1, verbose=0,
              callbacks=[keras.callbacks.ModelCheckpoint(str(tmp_path / "d.h5"))])
    assert "\n" not in str(err.value) and "d.h5: HDF5 cannot hold a subclassed model" in str(err.value)
    weights = tmp_path / "w.h5"
    d.fit(x, y, epochs=1, verbose=0,
          callbacks=[keras.callbacks.ModelCheckpoint(str(weights), save_weights_only=True)])
    fresh = tfkd.Distiller(student=_twin(student), teacher=_twin(teacher))
    fresh.student.set_weights([np.zeros_like(w) for w in student.get_weights()])
    fresh.load_weights(weights)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), d.predict(x, verbose=0))


@pytest.mark.slow
def test_mirrored_strategy_last_batch_smaller_than_replicas_equals_plain_keras(tiny_pair):
    teacher, student, x, y = tiny_pair
    x, y = x[:33], y[:33]  # batches of 16, 16, 1: one replica gets an empty last slice
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    with strategy.scope():
        s, t = _twin(student), _twin(teacher)
        plain = _twin(student)
        d = tfkd.Distiller(student=s, teacher=t, alpha=1.0)
        d.compile(optimizer=keras.optimizers.SGD(0.1))
        plain.compile(optimizer=keras.optimizers.SGD(0.1), loss=_ce())
    ours = d.fit(ds, epochs=2, verbose=0).history["loss"]
    theirs = plain.fit(ds, epochs=2, verbose=0).history["loss"]
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    for a, b in zip(plain.get_weights(), s.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(d.evaluate(ds, verbose=0, return_dict=True)["loss"],
                               plain.evaluate(ds, verbose=0), rtol=1e-5)


def test_val_loss_does_not_depend_on_batch_size(tiny_pair):
    teacher, student, x, y = tiny_pair
    x, y = x[:40], y[:40]  # batch 32: one batch of 32 and one of 8
    d = tfkd.Distiller(student=student, teacher=teacher, temperature=2.0, alpha=0.3)
    d.compile(optimizer=keras.optimizers.SGD(0.0))
    logs = {b: d.fit(x, y, validation_data=(x, y), validation_batch_size=b, epochs=1, verbose=0)
            .history for b in (8, 32)}
    whole = d.evaluate(x, y, batch_size=40, return_dict=True, verbose=0)
    for key in ("val_loss", "val_student_loss", "val_distillation_loss"):
        np.testing.assert_allclose(logs[8][key], logs[32][key], rtol=1e-6)
        np.testing.assert_allclose(logs[32][key][0], whole[key[4:]], rtol=1e-6)
    plain = _twin(student)
    plain.compile(optimizer="sgd", loss=_ce())
    hard = tfkd.Distiller(student=student, teacher=teacher, alpha=1.0)
    hard.compile(optimizer="sgd")
    np.testing.assert_allclose(hard.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)["loss"],
                               plain.evaluate(x, y, batch_size=32, verbose=0), rtol=1e-6)


def test_logged_loss_includes_regularization_like_keras(tiny_pair):
    _, _, x, y = tiny_pair
    teacher, student = _regularized_pair()
    plain = _twin(student)
    plain.compile(optimizer=keras.optimizers.SGD(0.05), loss=_ce())
    d = tfkd.Distiller(student=student, teacher=teacher, alpha=1.0)
    d.compile(optimizer=keras.optimizers.SGD(0.05))
    theirs = plain.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
    ours = d.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    np.testing.assert_allclose(d.evaluate(x, y, verbose=0, return_dict=True)["loss"],
                               plain.evaluate(x, y, verbose=0), rtol=1e-5)


def test_summary_after_fit_and_teacher_flag_untouched(tiny_pair):
    teacher, student, x, y = tiny_pair
    before = [w.copy() for w in teacher.get_weights()]
    d = tfkd.Distiller(student=student, teacher=teacher)
    d.compile(optimizer=keras.optimizers.Adam(0.05))
    d.fit(x, y, epochs=1, verbose=0)
    lines = []
    d.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "student" in text and "teacher" in text
    assert f"Trainable params: {student.count_params()}" in text
    assert teacher.trainable is True
    assert {id(v) for v in d.trainable_weights} == {id(v) for v in student.trainable_weights}
    for a, b in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    teacher.trainable = False
    tfkd.Distiller(student=student, teacher=teacher)
    assert teacher.trainable is False


def _feature_pair(tiny_pair):
    teacher, student, x, y = tiny_pair
    pair = {"teacher": teacher.layers[0].name, "student": student.layers[0].name, "weight": 0.5}
    return teacher, student, x, y, pair


def test_get_config_from_config_round_trip(tiny_pair):
    teacher, student, x, y, pair = _feature_pair(tiny_pair)
    d = tfkd.Distiller(student=student, teacher=teacher, loss={"name": "dkd", "preset": "paper"},
                       features=[pair], student_loss=keras.losses.SparseCategoricalCrossentropy(
                           from_logits=True, ignore_class=2))
    again = tfkd.Distiller.from_config(d.get_config())
    assert again.get_config() == d.get_config()
    assert (again.temperature, again.alpha) == (4.0, 0.5)
    assert again.feature_pairs == d.feature_pairs
    assert again.distillation_loss_fn.get_config() == {"name": "dkd", "tckd_weight": 1.0,
                                                       "nckd_weight": 8.0, "warmup_epochs": 20}


def test_save_and_load_model_without_custom_objects(tiny_pair, tmp_path):
    teacher, student, x, y, pair = _feature_pair(tiny_pair)
    d = tfkd.Distiller(student=student, teacher=teacher, temperature=3.0, alpha=0.25, loss="dist",
                       features=[pair])
    smooth = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    d.compile(optimizer="adam", loss=smooth, metrics=["sparse_categorical_accuracy"])
    d.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "d.keras"
    d.save(path)
    again = keras.models.load_model(path)
    assert isinstance(again, tfkd.Distiller)
    np.testing.assert_array_equal(again.student.predict(x, verbose=0), student.predict(x, verbose=0))
    assert (again.temperature, again.alpha) == (3.0, 0.25)
    assert again.distillation_loss_fn.get_config() == d.distillation_loss_fn.get_config()
    assert again.feature_pairs == d.feature_pairs
    for a, b in zip(again.adapters + [again.teacher], d.adapters + [teacher]):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)
    np.testing.assert_allclose(again.evaluate(x, y, verbose=0, return_dict=True)["loss"],
                               d.evaluate(x, y, verbose=0, return_dict=True)["loss"], rtol=1e-6)


@pytest.mark.slow
def test_load_model_in_a_fresh_process(tiny_pair, tmp_path):
    teacher, student, x, y = tiny_pair
    d = tfkd.Distiller(student=student, teacher=teacher, loss={"name": "dkd", "tckd_weight": 2.0})
    d.save(tmp_path / "d.keras")
    np.save(tmp_path / "x.npy", x)
    code = ("import sys, numpy as np, tfkd, tf_keras; "  # no custom_objects, no tfkd.Distiller
            "d = tf_keras.models.load_model(sys.argv[1]); "
            "print(type(d).__name__, d.distillation_loss_fn.get_config()['tckd_weight']); "
            "np.save(sys.argv[2], d.predict(np.load(sys.argv[3]), verbose=0))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d.keras"), str(tmp_path / "p.npy"),
                          str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "Distiller 2.0"
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), student.predict(x, verbose=0))


def test_dkd_warm_up_follows_the_epoch(tiny_pair):
    teacher, student, x, y = tiny_pair
    full = tfkd.Distiller(student=student, teacher=teacher, loss={"name": "dkd", "warmup_epochs": 0})
    full.compile(optimizer="sgd")
    reference = full.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0)["distillation_loss"]
    d = tfkd.Distiller(student=student, teacher=teacher, loss={"name": "dkd", "warmup_epochs": 4})
    d.compile(optimizer=keras.optimizers.SGD(0.0))  # weights fixed: only the ramp changes
    hist = d.fit(x, y, batch_size=len(x), epochs=5, verbose=0).history["distillation_loss"]
    np.testing.assert_allclose(hist, [reference * r for r in (0.25, 0.5, 0.75, 1.0, 1.0)], rtol=1e-5)
    resumed = d.fit(x, y, batch_size=len(x), initial_epoch=1, epochs=2, verbose=0).history
    np.testing.assert_allclose(resumed["distillation_loss"], [reference * 0.5], rtol=1e-5)
