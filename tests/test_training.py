import dataclasses

import numpy as np
import pytest

from tfkd import keras
from tfkd.config import DistillConfig
from tfkd.distill.features import FeaturePair
from tfkd.train.fit import FitSettings, Progress, accuracy, cosine_adam, fit

QUIET = Progress(echo=lambda *_: None)


def test_plain_fit_is_keras_fit(tiny_data, make_cnn):
    """Without a teacher, fit() is model.fit on the same batches: same weights."""
    s = FitSettings(epochs=2, batch_size=16, learning_rate=0.01, keep_best=False)
    keras.utils.set_random_seed(0)
    ours = make_cnn()
    keras.utils.set_random_seed(0)
    ref = make_cnn()
    fit(ours, tiny_data, s, seed=5, progress=QUIET)
    keras.utils.set_random_seed(5)
    ref.compile(optimizer=cosine_adam(0.01, 2 * tiny_data.steps_per_epoch(16)),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ref.fit(tiny_data.train_dataset(16, 5), epochs=2, verbose=0)
    for a, b in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_cached_teacher_logits_train_like_the_live_teacher(tiny_data, make_cnn):
    keras.utils.set_random_seed(1)
    teacher = make_cnn(width=8)
    s = FitSettings(epochs=1, batch_size=16, learning_rate=0.01, keep_best=False)
    results = []
    for cache in (True, False):
        keras.utils.set_random_seed(2)
        student = make_cnn()
        hist = fit(student, tiny_data, dataclasses.replace(s, cache=cache), teacher, seed=3,
                   progress=QUIET)
        results.append((hist, student.get_weights()))
    (h1, w1), (h2, w2) = results
    assert set(h1) >= {"loss", "student_loss", "distillation_loss", "accuracy", "val_accuracy"}
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-4)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_best_validation_epoch_is_restored(tiny_data, make_cnn):
    model = make_cnn()
    lines = []
    hist = fit(model, tiny_data, FitSettings(epochs=3, batch_size=16, learning_rate=0.05), seed=0,
               progress=Progress(label="t", echo=lines.append))
    assert len(lines) == 3 and lines[0].startswith("  t epoch 1: accuracy=")
    assert accuracy(model, *tiny_data.arrays("validation")) == pytest.approx(max(hist["val_accuracy"]))


def test_feature_pairs_train_with_the_live_teacher(tiny_data, make_cnn):
    teacher, student = make_cnn(width=8), make_cnn()
    s = FitSettings(epochs=1, batch_size=16, learning_rate=0.01,
                    features=(FeaturePair(teacher="relu", student="relu", loss="hint"),))
    hist = fit(student, tiny_data, s, teacher, progress=QUIET)
    assert "hint_relu" in hist and np.isfinite(hist["hint_relu"][0])


def test_settings_inherit_from_distill_only_what_they_say():
    dc = DistillConfig(temperature=2.0, alpha=0.3, loss="dkd", loss_params={"beta": 2.0}, cache=False,
                       epochs=9, batch_size=7, learning_rate=0.5)
    s = FitSettings.distilling(dc, epochs=1, batch_size=2, learning_rate=0.1)
    assert (s.temperature, s.alpha, s.loss, s.loss_params, s.cache) == (2.0, 0.3, "dkd", {"beta": 2.0}, False)
    assert (s.epochs, s.batch_size, s.learning_rate, s.keep_best) == (1, 2, 0.1, True)


def test_accuracy_of_an_empty_split_is_nan(make_cnn):
    assert np.isnan(accuracy(make_cnn(), np.zeros((0, 6, 6, 1)), np.zeros(0)))
