"""Transfer clips (label -1) teach through the soft targets only."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfkd._keras import keras
from tfkd.data import frontend, online, speech
from tfkd.distill.distiller import Distiller
from tfkd.data.transfer import other_word_entries, transfer_entries
from tfkd.distill.masked_loss import MaskedSparseCategoricalCrossentropy

from wavutil import tone, write_wav

T, ALPHA = 4.0, 0.3


def _ce(y, logits):
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -logp[np.arange(len(y)), y]


def test_masked_loss_is_cross_entropy_for_labels_and_zero_for_transfer_clips():
    logits = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    y = np.array([0, -1, 3, 2, -1, 1], "int32")
    got = MaskedSparseCategoricalCrossentropy()(y, logits).numpy()
    keep = y >= 0
    np.testing.assert_allclose(got[keep], _ce(y[keep], logits[keep]), rtol=1e-5)
    np.testing.assert_array_equal(got[~keep], 0.0)
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    np.testing.assert_allclose(got[keep], plain(y[keep], logits[keep]).numpy(), rtol=1e-5)


def _pair():
    keras.utils.set_random_seed(1)
    teacher = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(3)], name="teacher")
    student = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(3)], name="student")
    x = np.random.default_rng(2).normal(size=(12, 8)).astype("float32")
    return teacher, student, x


def _one_sgd_step(teacher, student, x, y):
    d = Distiller(student=student, teacher=teacher, temperature=T, alpha=ALPHA,
                  student_loss=MaskedSparseCategoricalCrossentropy())
    d.compile(optimizer=keras.optimizers.SGD(1.0))
    before = [w.copy() for w in student.get_weights()]
    logs = d.train_on_batch(x, y, return_dict=True)
    return logs, [b - a for b, a in zip(before, student.get_weights())]


def _soft_only_gradient(teacher, student, x):
    # Reference: (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T)), batch mean.
    t = teacher(x, training=False)
    with tf.GradientTape() as tape:
        s = student(x, training=True)
        pt = tf.nn.softmax(t / T)
        kl = tf.reduce_sum(pt * (tf.math.log(pt) - tf.nn.log_softmax(s / T)), -1)
        loss = (1 - ALPHA) * T * T * tf.reduce_mean(kl)
    return [g.numpy() for g in tape.gradient(loss, student.trainable_variables)]


def test_a_batch_of_transfer_clips_gives_zero_hard_loss_and_the_soft_only_gradient():
    teacher, student, x = _pair()
    reference = _soft_only_gradient(teacher, student, x)
    logs, step = _one_sgd_step(teacher, student, x, np.full(len(x), -1, "int32"))
    assert logs["student_loss"] == 0.0
    assert logs["distillation_loss"] > 0
    for got, want in zip(step, reference):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_in_a_mixed_batch_only_labelled_clips_enter_the_hard_loss():
    teacher, student, x = _pair()
    y = np.array([0, 1, 2, -1] * 3, "int32")
    s = student(x).numpy()
    logs, _ = _one_sgd_step(teacher, student, x, y)
    keep = y >= 0
    # The Distiller averages over the whole batch: the labelled share weights the term.
    np.testing.assert_allclose(logs["student_loss"], _ce(y[keep], s[keep]).sum() / len(y), rtol=1e-5)


def _folder(tmp_path, words, speakers):
    for w in words:
        os.makedirs(tmp_path / w)
        for spk in speakers:
            write_wav(str(tmp_path / w / f"{spk}_nohash_0.wav"), tone(440, 0.5, 16000), 16000)
    return str(tmp_path)


def test_transfer_entries_are_every_wav_under_the_folder_unlabelled(tmp_path):
    root = tmp_path / "unlabelled"
    os.makedirs(root / "b")
    for rel in ("z.wav", "b/a.WAV", "b/notes.txt"):
        write_wav(str(root / rel), tone(300, 0.2, 8000), 8000) if rel.lower().endswith(".wav") \
            else (root / rel).write_text("x")
    got = transfer_entries(str(root))
    assert [os.path.relpath(e.path, root) for e in got] == ["z.wav", os.path.join("b", "a.WAV")]
    assert {e.label for e in got} == {online.NO_LABEL}


def test_transfer_folder_errors_name_the_key(tmp_path):
    with pytest.raises(speech.DataError, match="distill.transfer: folder .* does not exist"):
        transfer_entries(str(tmp_path / "nope"))
    with pytest.raises(speech.DataError, match="distill.transfer: no .wav files"):
        transfer_entries(str(tmp_path))


def test_other_words_are_the_left_out_words_of_the_training_split(tmp_path):
    speakers = [f"spk{i:02d}" for i in range(20)]
    root = _folder(tmp_path, ["a", "b", "c"], speakers)
    index = speech.scan(root, ["a", "b"])
    got = other_word_entries(index)
    want = sorted(os.path.join(root, "c", f"{s}_nohash_0.wav") for s in speakers
                  if speech.which_set(f"{s}_nohash_0.wav", 10, 10) == "train")
    assert 0 < len(want) < len(speakers)  # some speakers fall in validation/test
    assert sorted(e.path for e in got) == want
    assert {e.label for e in got} == {online.NO_LABEL}


def test_transfer_clips_stream_through_the_online_pipeline_with_label_minus_one(tmp_path):
    root = _folder(tmp_path, ["a", "b"], ["s1", "s2", "s3"])
    fp = frontend.FeatureParams()
    entries = [speech.Entry(os.path.join(root, "a", "s1_nohash_0.wav"), 0, "train")]
    entries += transfer_entries(os.path.join(root, "b"))
    ys = np.concatenate([y.numpy() for _, y in online.online_dataset(entries, fp, 2, seed=0)])
    assert sorted(ys) == [-1, -1, -1, 0]
