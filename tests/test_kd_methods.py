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
    got = losses.DKD(tckd_weight=a, nckd_weight=b)(y, t, s, T).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4)
    # mdistiller's warm-up: min(epoch / warmup, 1) with epochs counted from 1
    dkd = losses.DKD(tckd_weight=a, nckd_weight=b, warmup_epochs=20)
    np.testing.assert_allclose(dkd(y, t, s, T, epoch=5).numpy(), ref * 5 / 20, rtol=1e-4)
    np.testing.assert_allclose(dkd(y, t, s, T, epoch=25).numpy(), ref, rtol=1e-4)
    # the old names (Distiller config key distill.loss_params) still work
    old = losses.get_loss({"name": "dkd", "alpha": a, "beta": b})
    np.testing.assert_allclose(old(y, t, s, T).numpy(), ref, rtol=1e-4)


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
    weighted = T * T * (2 * (1 - pearson(ps, pt, -1)) + 3 * (1 - pearson(ps, pt, 0)).mean())
    np.testing.assert_allclose(losses.DIST(inter_weight=2, intra_weight=3)(None, t, s, T).numpy(),
                               weighted, rtol=1e-4)
    np.testing.assert_allclose(losses.get_loss({"name": "dist", "beta": 2, "gamma": 3})(None, t, s, T),
                               weighted, rtol=1e-4)


def test_kl_and_mse_match_numpy(logits):
    t, s, _ = logits
    T = 5.0
    ref = T * T * _kl(_softmax(t.astype(np.float64) / T), _softmax(s.astype(np.float64) / T))
    np.testing.assert_allclose(losses.KL()(None, t, s, T).numpy(), ref, rtol=1e-4)
    np.testing.assert_allclose(losses.MSE()(None, t, s, T).numpy(), ((t - s) ** 2).mean(-1), rtol=1e-5)
    assert losses.get_loss({"name": "dkd", "beta": 2.0}).get_config() == {
        "name": "dkd", "tckd_weight": 1.0, "nckd_weight": 2.0, "warmup_epochs": 20}
    with pytest.raises(ValueError, match="dkd nckd_weight: must be a number >= 0, got -1"):
        losses.DKD(beta=-1)
    with pytest.raises(ValueError, match="dkd tckd_weight: given twice .also as its old name 'alpha'"):
        losses.DKD(tckd_weight=1.0, alpha=2.0)
    with pytest.raises(ValueError, match="dkd warmup_epochs: must be an integer >= 0, got -2"):
        losses.DKD(warmup_epochs=-2)
    with pytest.raises(ValueError, match="loss dkd: unknown parameter 'gamma'"):
        losses.get_loss({"name": "dkd", "gamma": 1.0})


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


def test_attention_default_weight_is_the_reference_beta():
    rng = np.random.default_rng(2)
    ft = rng.normal(size=(4, 5, 6, 3)).astype(np.float32)
    fs = rng.normal(size=(4, 5, 6, 7)).astype(np.float32)

    def at(f):  # attention-transfer's at(): channel mean of squares, L2-normalized, per sample
        a = (f.astype(np.float64) ** 2).mean(-1).reshape(len(f), -1)
        return a / np.linalg.norm(a, axis=-1, keepdims=True)

    beta = 1000.0  # the paper's and the reference code's beta, added as beta / 2 * at_loss
    reference = beta / 2 * ((at(fs) - at(ft)) ** 2).mean()  # at_loss: mean over batch and positions
    pair = features.FeaturePair(teacher="t", student="s", loss="attention")
    assert pair.weight == 500.0
    ours = pair.weight * features.AttentionLoss()(ft, fs).numpy().mean()  # the Distiller's batch mean
    np.testing.assert_allclose(ours, reference, rtol=1e-5)
    assert features.FeaturePair(teacher="t", student="s").weight == 1.0
    assert features.FeaturePair(teacher="t", student="s", loss="attention", weight=2).weight == 2


def test_paper_presets_set_the_published_ratios(tiny_pair):
    teacher, student, x, y = tiny_pair
    dkd = losses.get_loss({"name": "dkd", "preset": "paper"})
    assert dkd.get_config() == {"name": "dkd", "tckd_weight": 1.0, "nckd_weight": 8.0, "warmup_epochs": 20}
    assert dkd.distiller_settings == {"temperature": 4.0, "alpha": 0.5}
    d = tfkd.Distiller(student=student, teacher=teacher, loss={"name": "dkd", "preset": "paper"})
    assert (d.temperature, d.alpha) == (4.0, 0.5)  # CE 1 : DKD 1
    d = tfkd.Distiller(student=student, teacher=teacher, loss={"name": "dist", "preset": "paper"})
    assert d.temperature == 4.0 and d.alpha == pytest.approx(1 / 3)  # CE 1 : DIST 2
    d.compile(optimizer="sgd")
    logs = d.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0)
    np.testing.assert_allclose(logs["loss"], (logs["student_loss"] + 2 * logs["distillation_loss"]) / 3,
                               rtol=1e-5)
    # explicit values that agree are fine; ones that disagree are refused, naming the key
    tfkd.Distiller(student=student, teacher=teacher, alpha=0.5, temperature=4,
                   loss={"name": "dkd", "preset": "paper"})
    with pytest.raises(ValueError, match="alpha: the dkd 'paper' preset sets alpha=0.5; got 0.1"):
        tfkd.Distiller(student=student, teacher=teacher, alpha=0.1, loss={"name": "dkd", "preset": "paper"})
    # preset values can be overridden inside the loss dict
    assert losses.get_loss({"name": "dkd", "preset": "paper", "warmup_epochs": 5}).warmup_epochs == 5
    with pytest.raises(tfkd.UnknownNameError, match="Unknown dkd preset 'cifar'. Available: paper"):
        losses.get_loss({"name": "dkd", "preset": "cifar"})
    with pytest.raises(tfkd.UnknownNameError, match="Unknown kl preset 'paper'. Available: $"):
        losses.get_loss({"name": "kl", "preset": "paper"})


def _kws_pair():
    keras.utils.set_random_seed(0)
    teacher = build("resnet_teacher", (49, 40, 1), 4, width=8)
    student = build("ds_cnn", (49, 40, 1), 4, channels=6, blocks=2)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 26, (32, 49, 40, 1)).astype(np.float32)
    y = rng.integers(0, 4, 32).astype(np.int32)
    return teacher, student, x, y


@pytest.mark.slow
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
