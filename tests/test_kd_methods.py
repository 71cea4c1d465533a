import numpy as np
import pytest

import tfkd
from tfkd._keras import keras
from tfkd.compress import quantize as q
from tfkd.distill import features, losses
from tfkd.models import build


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _kl(p, q_):
    return (p * (np.log(p) - np.log(q_))).sum(-1)


@pytest.fixture
def logits():
    rng = np.random.default_rng(1)
    return (rng.normal(0, 3, (6, 5)).astype(np.float32), rng.normal(0, 3, (6, 5)).astype(np.float32),
            rng.integers(0, 5, 6))


def test_dkd_matches_numpy(logits):
    t, s, y = logits
    T, a, b = 3.0, 1.0, 8.0
    pt, ps = _softmax(t.astype(np.float64) / T), _softmax(s.astype(np.float64) / T)
    m = np.eye(5)[y]
    bt = np.stack([(pt * m).sum(-1), (pt * (1 - m)).sum(-1)], -1)
    bs = np.stack([(ps * m).sum(-1), (ps * (1 - m)).sum(-1)], -1)
    tckd = _kl(bt, bs)
    nt = np.where(m > 0, 0, pt) / (pt * (1 - m)).sum(-1, keepdims=True)
    ns = np.where(m > 0, 0, ps) / (ps * (1 - m)).sum(-1, keepdims=True)
    nckd = np.array([_kl(nt[i][m[i] == 0], ns[i][m[i] == 0]) for i in range(6)])
    ref = T * T * (a * tckd + b * nckd)
    got = losses.DKD(alpha=a, beta=b)(y, t, s, T).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4)


def test_dist_matches_numpy(logits):
    t, s, _ = logits
    T = 2.0
    pt, ps = _softmax(t.astype(np.float64) / T), _softmax(s.astype(np.float64) / T)

    def pearson(a, b, axis):
        a = a - a.mean(axis, keepdims=True)
        b = b - b.mean(axis, keepdims=True)
        return (a * b).sum(axis) / (np.linalg.norm(a, axis=axis) * np.linalg.norm(b, axis=axis))

    ref = T * T * ((1 - pearson(ps, pt, -1)) + (1 - pearson(ps, pt, 0)).mean())
    got = losses.DIST()(None, t, s, T).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4)


def test_kl_and_mse_match_numpy(logits):
    t, s, _ = logits
    T = 5.0
    ref = T * T * _kl(_softmax(t.astype(np.float64) / T), _softmax(s.astype(np.float64) / T))
    np.testing.assert_allclose(losses.KL()(None, t, s, T).numpy(), ref, rtol=1e-4)
    np.testing.assert_allclose(losses.MSE()(None, t, s, T).numpy(), ((t - s) ** 2).mean(-1), rtol=1e-5)
    assert losses.get_loss({"name": "dkd", "beta": 2.0}).get_config() == {"name": "dkd", "alpha": 1.0, "beta": 2.0}
    with pytest.raises(ValueError, match="dkd beta: must be >= 0"):
        losses.DKD(beta=-1)


def test_feature_losses_match_numpy():
    rng = np.random.default_rng(0)
    ft = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
    fs = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(features.HintLoss()(ft, fs).numpy(), ((ft - fs) ** 2).mean((1, 2, 3)), rtol=1e-5)

    def at(f):
        a = (f.astype(np.float64) ** 2).mean(-1).reshape(len(f), -1)
        return a / np.linalg.norm(a, axis=-1, keepdims=True)

    np.testing.assert_allclose(features.AttentionLoss()(ft, fs).numpy(), ((at(ft) - at(fs)) ** 2).mean(-1),
                               rtol=1e-4)
    with pytest.raises(tfkd.UnknownNameError, match="Unknown feature loss 'fitnet'. Available: attention, hint"):
        features.FeaturePair(teacher="a", student="b", loss="fitnet")


def _kws_pair():
    keras.utils.set_random_seed(0)
    teacher = build("resnet_teacher", (49, 40, 1), 4, width=8)
    student = build("ds_cnn", (49, 40, 1), 4, channels=6, blocks=2)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 26, (32, 49, 40, 1)).astype(np.float32)
    y = rng.integers(0, 4, 32).astype(np.int32)
    return teacher, student, x, y


def test_feature_distillation_with_different_channels_and_sizes():
    teacher, student, x, y = _kws_pair()
    before = [w.copy() for w in teacher.get_weights()]
    # teacher stage1 output: 13x10x16; student relu_pw1: 25x20x6 -> resized + 1x1 adapter
    pairs = [{"teacher": "stage1_block0_out", "student": "relu_pw1", "loss": "hint", "weight": 0.5},
             {"teacher": "stage2_block0_out", "student": "relu_pw2", "loss": "attention", "weight": 10.0}]
    d = tfkd.Distiller(student=student, teacher=teacher, features=pairs)
    assert len(d.adapters) == 1 and d.adapters[0].kernel.shape == (1, 1, 6, 16)
    d.compile(optimizer="adam")
    adapter_before = d.adapters[0].get_weights()[0].copy()
    hist = d.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert "hint_relu_pw1" in hist.history and "attention_relu_pw2" in hist.history
    assert not np.array_equal(adapter_before, d.adapters[0].get_weights()[0])  # adapters learn
    for a, b in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    # adapters are never part of the student: the same weights in a model that never saw
    # a Distiller give a byte-identical int8 model
    plain = build("ds_cnn", (49, 40, 1), 4, channels=6, blocks=2)
    plain.set_weights(student.get_weights())
    assert q.convert_int8(student, x) == q.convert_int8(plain, x)
    assert student.count_params() == plain.count_params()
    assert not any("adapter" in l.name for l in student.layers)
    with pytest.raises(ValueError, match="features: student has no layer 'nope'"):
        tfkd.Distiller(student=student, teacher=teacher, features=[{"teacher": "stem", "student": "nope"}])


def test_feature_distillation_refuses_cached_logits():
    from tfkd.distill import cache
    teacher, student, x, y = _kws_pair()
    d = tfkd.Distiller(student=student, teacher=teacher,
                       features=[{"teacher": "stem", "student": "relu0"}])
    d.compile(optimizer="adam")
    ds = cache.cached_dataset(x, y, cache.teacher_logits(teacher, x), 8)
    with pytest.raises(ValueError, match="needs the live teacher"):
        d.fit(ds, epochs=1, verbose=0)


@pytest.mark.parametrize("loss", ["dkd", "dist", "mse"])
def test_every_loss_trains(loss):
    teacher, student, x, y = _kws_pair()
    d = tfkd.Distiller(student=student, teacher=teacher, loss=loss)
    d.compile(optimizer="adam")
    hist = d.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
