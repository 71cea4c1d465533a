import numpy as np
import pytest
import tensorflow as tf

import tfkd
from tfkd._keras import keras
from tfkd.distill import cache
from tfkd.registry import UnknownNameError


def _np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_reference(t_logits, s_logits, y, temperature, alpha, w=None):
    """Hinton et al. 2015 in float64, written independently of tfkd."""
    t = t_logits.astype(np.float64)
    s = s_logits.astype(np.float64)
    hard = -_np_log_softmax(s)[np.arange(len(y)), y]
    lp = _np_log_softmax(t / temperature)
    lq = _np_log_softmax(s / temperature)
    soft = temperature ** 2 * (np.exp(lp) * (lp - lq)).sum(-1)
    w = np.ones(len(y)) if w is None else w
    hard = (hard * w).sum() / len(y)
    soft = (soft * w).sum() / len(y)
    return alpha * hard + (1 - alpha) * soft, hard, soft


@pytest.mark.parametrize("temperature,alpha", [(1.0, 0.5), (4.0, 0.1), (20.0, 0.0), (2.5, 1.0)])
def test_logged_loss_matches_numpy(tiny_pair, temperature, alpha):
    teacher, student, x, y = tiny_pair
    d = tfkd.Distiller(student=student, teacher=teacher, temperature=temperature, alpha=alpha)
    d.compile(optimizer="sgd")
    logs = d.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0)
    total, hard, soft = np_reference(teacher.predict(x, verbose=0), student.predict(x, verbose=0),
                                     y, temperature, alpha)
    np.testing.assert_allclose(logs["loss"], total, rtol=1e-4)
    np.testing.assert_allclose(logs["student_loss"], hard, rtol=1e-4)
    np.testing.assert_allclose(logs["distillation_loss"], soft, rtol=1e-4)


def test_sample_weights_follow_keras_convention(tiny_pair):
    teacher, student, x, y = tiny_pair
    w = np.linspace(0.0, 2.0, len(x)).astype("float32")
    d = tfkd.Distiller(student=student, teacher=teacher, temperature=3.0, alpha=0.3)
    d.compile(optimizer="sgd")
    logs = d.evaluate(x, y, sample_weight=w, batch_size=len(x), return_dict=True, verbose=0)
    total, _, _ = np_reference(teacher.predict(x, verbose=0), student.predict(x, verbose=0),
                               y, 3.0, 0.3, w)
    np.testing.assert_allclose(logs["loss"], total, rtol=1e-4)


def test_call_is_the_student(tiny_pair):
    teacher, student, x, y = tiny_pair
    d = tfkd.Distiller(student=student, teacher=teacher)
    np.testing.assert_array_equal(d(x).numpy(), student(x).numpy())
    d.compile(optimizer="adam")
    np.testing.assert_array_equal(d.predict(x, verbose=0), student.predict(x, verbose=0))


def test_fit_logs_and_teacher_is_frozen(tiny_pair):
    teacher, student, x, y = tiny_pair
    before_t = [w.copy() for w in teacher.get_weights()]
    before_s = [w.copy() for w in student.get_weights()]
    d = tfkd.Distiller(student=student, teacher=teacher, temperature=4.0, alpha=0.1)
    d.compile(optimizer=keras.optimizers.Adam(0.05), metrics=["sparse_categorical_accuracy"])
    hist = d.fit(x, y, validation_data=(x, y), epochs=2, batch_size=16, verbose=0)
    for key in ("loss", "student_loss", "distillation_loss", "sparse_categorical_accuracy",
                "val_loss", "val_student_loss", "val_distillation_loss"):
        assert key in hist.history, key
    for a, b in zip(before_t, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(before_s, student.get_weights()))


def test_alpha_one_equals_plain_fit(tiny_pair):
    teacher, student, x, y = tiny_pair
    init = [w.copy() for w in student.get_weights()]
    plain = keras.models.clone_model(student)
    plain.set_weights(init)
    keras.utils.set_random_seed(1)
    plain.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    plain.fit(x, y, epochs=3, batch_size=8, shuffle=True, verbose=0)
    keras.utils.set_random_seed(1)
    d = tfkd.Distiller(student=student, teacher=teacher, alpha=1.0)
    d.compile(optimizer=keras.optimizers.SGD(0.1))
    d.fit(x, y, epochs=3, batch_size=8, shuffle=True, verbose=0)
    for a, b in zip(plain.get_weights(), student.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_cached_logits_give_same_losses(tiny_pair):
    teacher, student, x, y = tiny_pair
    d = tfkd.Distiller(student=student, teacher=teacher, temperature=5.0, alpha=0.2)
    d.compile(optimizer="sgd")
    live = d.evaluate(x, y, batch_size=16, return_dict=True, verbose=0)
    logits = cache.teacher_logits(teacher, x)
    ds = cache.cached_dataset(x, y, logits, batch_size=16, shuffle=False)
    cached = d.evaluate(ds, return_dict=True, verbose=0)
    for key in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(cached[key], live[key], rtol=1e-5)
    from_ds = cache.cache_teacher_logits(teacher, tf.data.Dataset.from_tensor_slices((x, y)).batch(16))
    again = d.evaluate(from_ds, return_dict=True, verbose=0)
    np.testing.assert_allclose(again["loss"], live["loss"], rtol=1e-5)


def test_cached_views_draw_one_view_per_clip(tiny_pair):
    teacher, student, x, y = tiny_pair
    views = np.stack([x, x + 1.0, x - 1.0], axis=1)  # [N, 3, 8]
    logits = cache.teacher_logits(teacher, views)
    assert logits.shape == (len(x), 3, 3)
    np.testing.assert_allclose(logits[:, 1], teacher.predict(x + 1.0, verbose=0), rtol=1e-5, atol=1e-6)
    ds = cache.cached_dataset(views, y, logits, batch_size=len(x), shuffle=False, seed=3)
    seen = set()
    for _ in range(3):
        batch_x, _ = next(iter(ds))
        inp, tl = batch_x["inputs"].numpy(), batch_x["teacher_logits"].numpy()
        offs = np.round(inp[:, 0] - x[:, 0]).astype(int)
        seen.update(offs.tolist())
        # every drawn input comes with its own view's logits
        np.testing.assert_allclose(tl, logits[np.arange(len(x)), np.array([{0: 0, 1: 1, -1: 2}[o] for o in offs])])
    assert seen == {-1, 0, 1}
    d = tfkd.Distiller(student=student, teacher=teacher)
    d.compile(optimizer="adam")
    d.fit(ds, epochs=1, verbose=0)


def test_cache_refuses_random_augmentation(tiny_pair):
    teacher, _, x, y = tiny_pair
    gen = tf.random.Generator.from_seed(1)  # state advances across passes, as in training
    ds = tf.data.Dataset.from_tensor_slices((x, y)).map(
        lambda a, b: (a + gen.normal(tf.shape(a)), b)).batch(16)
    with pytest.raises(cache.NonDeterministicDataError, match="change between passes"):
        cache.cache_teacher_logits(teacher, ds)


def test_tf_data_and_mirrored_strategy(tiny_pair):
    teacher, student, x, y = tiny_pair
    assert len(tf.config.list_logical_devices("CPU")) >= 2
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        s = keras.models.clone_model(student)
        t = keras.models.clone_model(teacher)
        d = tfkd.Distiller(student=s, teacher=t, temperature=2.0, alpha=0.5)
        d.compile(optimizer="adam", metrics=["sparse_categorical_accuracy"])
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    hist = d.fit(ds, epochs=2, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    # the logged loss is the global-batch mean, as without a strategy
    logs = d.evaluate(ds, return_dict=True, verbose=0)
    plain = tfkd.Distiller(student=s, teacher=t, temperature=2.0, alpha=0.5)
    plain.compile(optimizer="adam")
    np.testing.assert_allclose(plain.evaluate(ds, return_dict=True, verbose=0)["loss"], logs["loss"],
                               rtol=1e-5)


def test_student_save_and_reload(tiny_pair, tmp_path):
    teacher, student, x, y = tiny_pair
    d = tfkd.Distiller(student=student, teacher=teacher)
    d.compile(optimizer="adam")
    d.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "student.keras"
    d.student.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), student.predict(x, verbose=0), rtol=1e-6)
    cfg = d.get_config()
    assert cfg["temperature"] == 4.0 and cfg["alpha"] == 0.1 and cfg["loss"] == {"name": "kl"}


@pytest.mark.parametrize("kwargs,match", [
    ({"temperature": 0}, "temperature: must be a number > 0, got 0"),
    ({"temperature": -1.0}, "temperature: must be a number > 0, got -1.0"),
    ({"temperature": float("nan")}, "temperature"),
    ({"temperature": "4"}, "temperature"),
    ({"alpha": -0.1}, r"alpha: must be a number in \[0, 1\], got -0.1"),
    ({"alpha": 1.5}, "alpha: .* got 1.5"),
])
def test_invalid_numbers(tiny_pair, kwargs, match):
    teacher, student, _, _ = tiny_pair
    with pytest.raises(ValueError, match=match):
        tfkd.Distiller(student=student, teacher=teacher, **kwargs)


def test_invalid_models_and_loss(tiny_pair):
    teacher, student, _, _ = tiny_pair
    with pytest.raises(UnknownNameError, match="Unknown loss 'kl2'. Available: dist, dkd, kl, mse"):
        tfkd.Distiller(student=student, teacher=teacher, loss="kl2")
    with pytest.raises(TypeError, match="student: must be a tf_keras Model"):
        tfkd.Distiller(student="model", teacher=teacher)
    with pytest.raises(ValueError, match="student/teacher: they share weights"):
        tfkd.Distiller(student=student, teacher=student)
    wide = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(5)])
    with pytest.raises(ValueError, match="output widths differ: student has 5, teacher has 3"):
        tfkd.Distiller(student=wide, teacher=teacher)
    soft = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(ValueError, match="teacher: its last layer is a softmax"):
        tfkd.Distiller(student=student, teacher=soft)
    soft2 = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(3), keras.layers.Softmax()])
    with pytest.raises(ValueError, match="student: its last layer is a softmax"):
        tfkd.Distiller(student=soft2, teacher=teacher)
    d = tfkd.Distiller(student=student, teacher=teacher)
    with pytest.raises(ValueError, match=r"compile loss: SparseCategoricalCrossentropy\(from_logits=False\)"):
        d.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy())
    with pytest.raises(ValueError, match="compile loss_weights: the Distiller weighs its terms with alpha"):
        d.compile(optimizer="adam", loss_weights=[1.0])


def test_keras3_model_refused(tiny_pair):
    keras3 = pytest.importorskip("keras")
    if not keras3.__version__.startswith("3"):
        pytest.skip("Keras 3 not installed")
    teacher, _, _, _ = tiny_pair
    k3 = keras3.Sequential([keras3.layers.Input((8,)), keras3.layers.Dense(3)])
    with pytest.raises(TypeError, match="student: got a Keras 3 model .*import tf_keras as keras"):
        tfkd.Distiller(student=k3, teacher=teacher)
