"""keras.distillation's vocabulary, accepted by tfkd's Distiller beside its own."""

import numpy as np
import pytest

import tfkd
from tfkd._keras import keras
from tfkd.distill import FeatureDistillation, LogitsDistillation


def _logs(d, x, y):
    return d.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0)


def test_logits_distillation_is_tfkd_kl(tiny_pair):
    teacher, student, x, y = tiny_pair
    ours = tfkd.Distiller(student=student, teacher=teacher, temperature=3.0, alpha=0.3)
    ours.compile(optimizer="sgd")
    keras_style = tfkd.Distiller(teacher=teacher, student=student,
                                 distillation_losses=LogitsDistillation(temperature=3.0),
                                 student_loss_weight=0.3)
    keras_style.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert keras_style.student_loss_weight == 0.3
    a, b = _logs(ours, x, y), _logs(keras_style, x, y)
    for key in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(b[key], a[key], rtol=1e-6)
    # keras.distillation's defaults: student_loss_weight 0.5, temperature 3
    default = tfkd.Distiller(teacher=teacher, student=student, distillation_losses=[LogitsDistillation()])
    assert (default.alpha, default.temperature) == (0.5, 3.0)


def test_weights_and_feature_distillation_map_onto_tfkd(tiny_pair):
    teacher, student, x, y = tiny_pair
    t_layer, s_layer = teacher.layers[0].name, student.layers[0].name
    keras_style = tfkd.Distiller(
        teacher=teacher, student=student,
        distillation_losses=[LogitsDistillation(temperature=2.0),
                             FeatureDistillation(teacher_layer_name=t_layer, student_layer_name=s_layer)],
        distillation_loss_weights=[2.0, 0.5], student_loss_weight=0.2)
    assert keras_style.feature_pairs == (tfkd.FeaturePair(teacher=t_layer, student=s_layer, loss="hint",
                                                          weight=0.8 * 0.5),)
    keras_style.compile(optimizer="sgd")
    logs = _logs(keras_style, x, y)
    # keras.distillation: a * CE + (1 - a) * sum(w_i * term_i)
    expected = 0.2 * logs["student_loss"] + 0.8 * (2.0 * logs["distillation_loss"]
                                                     + 0.5 * logs[f"hint_{s_layer}"])
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    again = tfkd.Distiller.from_config(keras_style.get_config())
    again.compile(optimizer="sgd")
    again.set_weights(keras_style.get_weights())  # from_config builds fresh weights, as in Keras
    np.testing.assert_allclose(_logs(again, x, y)["loss"], logs["loss"], rtol=1e-6)


def test_compile_loss_sets_the_hard_label_loss(tiny_pair):
    teacher, student, x, y = tiny_pair
    smooth = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)
    d = tfkd.Distiller(student=student, teacher=teacher, alpha=1.0)
    d.compile(optimizer="sgd", loss=lambda yt, yp: smooth(keras.backend.one_hot(
        keras.backend.cast(keras.backend.flatten(yt), "int32"), 3), yp))
    plain = keras.models.clone_model(student)
    plain.set_weights(student.get_weights())
    plain.compile(optimizer="sgd", loss=smooth)
    np.testing.assert_allclose(_logs(d, x, y)["loss"],
                               plain.evaluate(x, keras.utils.to_categorical(y, 3), verbose=0), rtol=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    ({"loss": "kl", "distillation_losses": [LogitsDistillation()]}, "loss: give loss= or distillation_losses="),
    ({"alpha": 0.2, "student_loss_weight": 0.2}, "student_loss_weight: keras.distillation's name for alpha"),
    ({"distillation_losses": [LogitsDistillation()], "distillation_loss_weights": [1.0, 2.0]},
     "distillation_loss_weights: 2 weights for 1 distillation_losses"),
    ({"distillation_loss_weights": [1.0]}, "distillation_loss_weights: needs distillation_losses"),
    ({"distillation_losses": [LogitsDistillation(), LogitsDistillation()]}, "at most one LogitsDistillation"),
    ({"temperature": 5.0, "distillation_losses": [LogitsDistillation(temperature=3.0)]},
     r"temperature: 5.0 differs from LogitsDistillation\(temperature=3.0\)"),
    ({"distillation_losses": [LogitsDistillation()], "student_loss_weight": 1.5},
     r"student_loss_weight: must be a number in \[0, 1\], got 1.5"),
])
def test_vocabulary_conflicts_are_refused(tiny_pair, kwargs, match):
    teacher, student, _, _ = tiny_pair
    with pytest.raises(ValueError, match=match):
        tfkd.Distiller(student=student, teacher=teacher, **kwargs)


def test_feature_distillation_needs_layer_names():
    with pytest.raises(ValueError, match="FeatureDistillation: tfkd needs teacher_layer_name and student_layer_name"):
        FeatureDistillation(loss="mse")
    with pytest.raises(tfkd.UnknownNameError, match="Unknown feature loss 'cosine'"):
        FeatureDistillation(loss="cosine", teacher_layer_name="a", student_layer_name="b")


def test_same_numbers_as_keras_distillation(tiny_pair):
    keras3 = pytest.importorskip("keras")
    if not hasattr(keras3, "distillation"):
        pytest.skip("keras.distillation needs Keras >= 3.12")
    teacher, student, x, y = tiny_pair

    def port(model, name):  # the same network and weights, built with Keras 3
        layers = [keras3.layers.Dense(l.units, activation=l.activation.__name__, name=f"{name}_{i}")
                  for i, l in enumerate(model.layers)]
        m = keras3.Sequential([keras3.Input((8,)), *layers])
        m.set_weights(model.get_weights())
        return m

    t3, s3 = port(teacher, "t"), port(student, "s")
    # A KLDivergence object: with the default loss="kl_divergence" string, Keras 3.15.1 gets a
    # plain function, misses its KL branch and computes KL of the tempered logits without T².
    kl = keras3.losses.KLDivergence()
    k3 = keras3.distillation.Distiller(
        teacher=t3, student=s3, student_loss_weight=0.3, distillation_loss_weights=[1.0, 0.5],
        distillation_losses=[keras3.distillation.LogitsDistillation(temperature=2.0, loss=kl),
                             keras3.distillation.FeatureDistillation(teacher_layer_name="t_1",
                                                                     student_layer_name="s_1")])
    k3.compile(optimizer="sgd", loss=keras3.losses.SparseCategoricalCrossentropy(from_logits=True))
    theirs = k3.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0)
    ours = tfkd.Distiller(
        teacher=teacher, student=student, student_loss_weight=0.3, distillation_loss_weights=[1.0, 0.5],
        distillation_losses=[LogitsDistillation(temperature=2.0, loss=keras.losses.KLDivergence()),
                             FeatureDistillation(teacher_layer_name=teacher.layers[1].name,
                                                 student_layer_name=student.layers[1].name)])
    ours.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    mine = _logs(ours, x, y)
    np.testing.assert_allclose(mine["loss"], theirs["loss"], rtol=1e-5)
    np.testing.assert_allclose(mine["student_loss"], theirs["student_loss"], rtol=1e-5)
