"""On-the-fly augmentation (tfkd.data.online) and consistent teaching with a live teacher."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfkd._keras import keras
from tfkd.data import augment, frontend, online, speech
from tfkd.distill.distiller import Distiller
from tfkd.distill.masked_loss import MaskedSparseCategoricalCrossentropy

MINI = os.path.join(os.path.dirname(__file__), "..", "tfkd", "assets", "speech_commands_mini")
FP = frontend.FeatureParams()
AUG = augment.AugmentParams(time_masks=2, time_mask_frames=5, freq_masks=2, freq_mask_bins=5)


@pytest.fixture(scope="module")
def mini():
    index = speech.scan(MINI, seed=0)
    noise = speech.load_noise(index.noise_files, FP.sample_rate)
    return index, index.split("train"), noise


def _epoch(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def test_clean_clips_give_the_data_stage_features_bit_for_bit(mini):
    index, entries, noise = mini
    waves, labels, _ = speech.load_waves(index, entries, FP.sample_rate, FP.clip_samples, noise=noise)
    x, y = _epoch(online.online_dataset(entries, FP, 7, noise=noise, shuffle=False))
    assert x.shape == (len(entries),) + frontend.feature_shape(FP)
    np.testing.assert_array_equal(x, frontend.compute(waves, FP))
    np.testing.assert_array_equal(y, labels)


def test_fresh_every_epoch_and_reproducible_under_the_seed(mini):
    _, entries, noise = mini
    mix = online.MixupParams(prob=0.5)
    ds = online.online_dataset(entries, FP, 8, noise=noise, augment=AUG, mixup=mix, seed=3)
    first, second = _epoch(ds), _epoch(ds)
    assert not np.array_equal(first[0], second[0])
    again = online.online_dataset(entries, FP, 8, noise=noise, augment=AUG, mixup=mix, seed=3)
    np.testing.assert_array_equal(_epoch(again)[0], first[0])
    np.testing.assert_array_equal(_epoch(again)[0], second[0])
    other = online.online_dataset(entries, FP, 8, noise=noise, augment=AUG, mixup=mix, seed=4)
    assert not np.array_equal(_epoch(other)[0], first[0])


def test_every_clip_once_per_epoch_with_its_label_unless_mixed(mini):
    _, entries, noise = mini
    ds = online.online_dataset(entries, FP, 8, noise=noise, augment=AUG, seed=1)
    _, y = _epoch(ds)
    assert sorted(y) == sorted(e.label for e in entries)


def test_mixup_weights_in_unit_interval_and_mixed_clips_lose_their_label():
    rng = np.random.default_rng(0)
    waves = rng.uniform(-0.5, 0.5, size=(64, 100)).astype("float32")
    labels = rng.integers(0, 5, size=64).astype("int32")
    r = tf.constant(rng.integers(-2**62, 2**62, size=64), tf.int64)
    out, y, w = (t.numpy() for t in online.mixup_batch(
        tf.constant(waves), tf.constant(labels), r, online.MixupParams(prob=0.5, alpha=0.4)))
    assert np.all((w >= 0) & (w <= 1))
    mixed = y == online.NO_LABEL  # every input label is >= 0
    assert 10 < mixed.sum() < 54  # about half of 64 at prob 0.5
    assert 0 < np.mean(w[mixed]) < 1
    np.testing.assert_array_equal(w[~mixed], 1.0)
    np.testing.assert_array_equal(y[~mixed], labels[~mixed])
    expect = np.clip(w[:, None] * waves + (1 - w[:, None]) * np.roll(waves, -1, axis=0), -1, 1)
    np.testing.assert_allclose(out, expect, atol=1e-6)
    np.testing.assert_array_equal(out[~mixed], waves[~mixed])


@pytest.mark.parametrize("prob, n_mixed", [(0.0, 0), (1.0, 16)])
def test_mixup_probability_bounds(prob, n_mixed):
    waves = tf.random.stateless_uniform([16, 50], [1, 2])
    _, y, _ = online.mixup_batch(waves, tf.zeros([16], tf.int32), tf.range(16, dtype=tf.int64),
                                 online.MixupParams(prob=prob))
    assert int(np.sum(y.numpy() == online.NO_LABEL)) == n_mixed


def test_mixup_params_refuse_bad_values():
    with pytest.raises(ValueError, match="prob: must be in"):
        online.MixupParams(prob=1.5)
    with pytest.raises(ValueError, match="alpha: must be > 0"):
        online.MixupParams(alpha=0)


def test_spec_augment_masks_are_bands_of_the_clip_mean():
    x = tf.random.stateless_uniform([32, 49, 40], [0, 1]) + 1.0
    p = augment.AugmentParams(time_masks=1, time_mask_frames=6, freq_masks=0)
    out = online.spec_augment_batch(x, tf.range(32, dtype=tf.int64), p).numpy()
    x = x.numpy()
    widths = []
    for a, b in zip(x, out):
        changed = np.where(np.any(a != b, axis=1))[0]
        widths.append(len(changed))
        if len(changed):
            assert changed[-1] - changed[0] + 1 == len(changed)  # one contiguous band
            np.testing.assert_allclose(b[changed], a.mean(), rtol=1e-6)
    assert max(widths) <= 6 and max(widths) > 0


class Spy(keras.layers.Layer):
    """Records the inputs it sees when run eagerly."""

    def __init__(self, seen, **kw):
        super().__init__(**kw)
        self.seen = seen

    def call(self, x):
        if tf.executing_eagerly():
            self.seen.append(x.numpy().copy())
        return x


def _spied(seen, width, name):
    return keras.Sequential([keras.layers.Input(frontend.feature_shape(FP)), Spy(seen),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(width)],
                            name=name)


def test_consistent_mode_the_live_teacher_sees_the_students_exact_batch(mini):
    index, entries, noise = mini
    keras.utils.set_random_seed(0)
    t_seen, s_seen = [], []
    n = len(index.labels)
    distiller = Distiller(student=_spied(s_seen, n, "student"), teacher=_spied(t_seen, n, "teacher"),
                          student_loss=MaskedSparseCategoricalCrossentropy())
    distiller.compile(optimizer="adam", run_eagerly=True)
    ds = online.online_dataset(entries, FP, 8, noise=noise, augment=AUG,
                               mixup=online.MixupParams(prob=0.5), seed=0)
    distiller.fit(ds, epochs=2, verbose=0)
    steps = 2 * int(np.ceil(len(entries) / 8))
    assert len(t_seen) == len(s_seen) == steps
    for t, s in zip(t_seen, s_seen):
        np.testing.assert_array_equal(t, s)
    # ... and the batches are new each epoch, not K fixed views.
    assert not np.array_equal(np.concatenate(t_seen[:steps // 2]), np.concatenate(t_seen[steps // 2:]))


@pytest.mark.slow
def test_pipeline_consistent_mode_with_mixup_transfer_and_a_teacher_ensemble(tmp_path):
    import json

    from wavutil import tone, write_wav

    from tfkd.config import from_dict
    from tfkd.pipeline.runner import run_pipeline

    transfer = tmp_path / "unlabelled"
    os.makedirs(transfer)
    for i in range(3):
        write_wav(str(transfer / f"t{i}.wav"), tone(300 + 100 * i, 1.0, 16000), 16000)
    raw = {
        "name": "consistent", "seed": 1,
        "data": {"path": os.path.abspath(MINI), "augment": {"views": 2, "time_masks": 1, "freq_masks": 1}},
        "teacher": {"model": "ds_cnn", "params": {"channels": 8, "blocks": 1}, "epochs": 1,
                    "batch_size": 16, "ensemble": 2, "mode": "consistent"},
        "student": {"model": "ds_cnn", "params": {"channels": 4, "blocks": 1}},
        "distill": {"epochs": 2, "batch_size": 16, "mode": "consistent",
                    "mixup": {"prob": 0.5, "alpha": 0.4}, "transfer": str(transfer)},
        "prune": {"method": "none", "epochs": 0},
        "quantize": {"representative_samples": 10, "min_agreement": 0.0, "max_step_diff": 2},
        "export": {"golden_vectors": 0},
    }
    out = tmp_path / "run"
    run_pipeline(from_dict(raw), str(out), echo=lambda *_: None, tty=False, stop_after="distill")
    m = json.loads((out / "metrics.json").read_text())
    members = m["teacher"]["ensemble"]
    assert len(members) == 2 and all(set(t) >= {"accuracy", "val_accuracy", "params"} for t in members)
    assert m["teacher"]["params"] == sum(t["params"] for t in members)
    assert m["distill"]["mode"] == "consistent"
    assert m["distill"]["transfer_clips"] == 3


@pytest.mark.parametrize("overrides, message", [
    (["distill.mixup.prob=0.5"], "distill.mixup: needs distill.mode: consistent"),
    (["distill.other_words=true"], "distill.other_words: needs distill.mode: consistent"),
    (["distill.mode=sometimes"], "distill.mode: must be cached or consistent, got 'sometimes'"),
    (["data.path=MINI", "distill.mode=consistent", "distill.mixup.prob=0.5", "distill.loss=dkd"],
     "distill.mixup: cannot be used with loss dkd"),
    (["distill.mode=consistent"], "distill.mode: consistent reads the clip files every epoch: it "
                                  "needs data.path"),
    (["teacher.mode=consistent"], "teacher.mode: consistent reads the clip files"),
    (["teacher.ensemble=0"], "teacher.ensemble: must be >= 1, got 0"),
])
def test_config_refuses_what_consistent_mode_cannot_do(overrides, message):
    from tfkd.config import ConfigError, load

    pipeline = os.path.join(os.path.dirname(__file__), "..", "pipelines", "kws_micro.yaml")
    overrides = [o.replace("MINI", os.path.abspath(MINI)) for o in overrides]
    with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.")):
        load(pipeline, overrides)


def test_config_accepts_the_consistent_recipe():
    from tfkd.config import load

    pipeline = os.path.join(os.path.dirname(__file__), "..", "pipelines", "kws_micro.yaml")
    cfg = load(pipeline, [f"data.path={os.path.abspath(MINI)}", "distill.mode=consistent",
                          "distill.mixup={prob: 0.5, alpha: 0.3}", "teacher.ensemble=3",
                          "teacher.mode=consistent"])
    assert (cfg.distill.mode, cfg.distill.mixup, cfg.teacher.ensemble, cfg.teacher.mode) == (
        "consistent", online.MixupParams(prob=0.5, alpha=0.3), 3, "consistent")
    default = load(pipeline, [])
    assert (default.distill.mode, default.distill.mixup.prob, default.teacher.ensemble) == ("cached", 0.0, 1)
