"""A teacher ensemble is one logits model: the mean of its members' logits."""

import numpy as np
import pytest

from tfkd._keras import keras
from tfkd.distill.cache import teacher_logits
from tfkd.distill.distiller import Distiller
from tfkd.distill.ensemble import ensemble


def _member(seed, width=3, name="teacher"):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(5, activation="relu"),
                             keras.layers.Dense(width)], name=name)


X = np.random.default_rng(0).normal(size=(10, 8)).astype("float32")


def test_output_is_the_mean_of_the_members_logits():
    members = [_member(s) for s in range(3)]  # same name, as seeds of one recipe
    model = ensemble(members)
    want = np.mean([m.predict(X, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(model.predict(X, verbose=0), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(teacher_logits(model, X), want, rtol=1e-6, atol=1e-6)
    assert model.count_params() == sum(m.count_params() for m in members)


def test_one_teacher_is_returned_unchanged():
    m = _member(0)
    assert ensemble([m]) is m


def test_members_must_agree_on_the_output_width():
    with pytest.raises(ValueError, match=r"teacher.ensemble\[1\]: 4 outputs, teacher 0 has 3"):
        ensemble([_member(0), _member(1, width=4)])
    with pytest.raises(ValueError, match="at least one teacher"):
        ensemble([])


def test_distilling_from_an_ensemble_leaves_every_member_unchanged():
    members = [_member(s) for s in range(2)]
    before = [m.get_weights() for m in members]
    student = _member(9, name="student")
    d = Distiller(student=student, teacher=ensemble(members))
    d.compile(optimizer="adam")
    d.fit(X, np.zeros(10, "int32"), epochs=2, verbose=0)
    for m, w in zip(members, before):
        for a, b in zip(m.get_weights(), w):
            np.testing.assert_array_equal(a, b)


def test_save_and_load_round_trip(tmp_path):
    model = ensemble([_member(s) for s in range(2)])
    path = str(tmp_path / "ensemble.keras")
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0), atol=1e-6)
