import os

import numpy as np
import pytest

from tfkd.data import augment, frontend, speech, wav
from tests.wavutil import tone, write_wav

MINI = os.path.join(os.path.dirname(__file__), "..", "tfkd", "assets", "speech_commands_mini")


def _full_layout(root, words=("yes", "no", "cat", "dog"), speakers=8, rate=16000):
    rng = np.random.default_rng(0)
    for w in words:
        os.makedirs(root / w)
        for s in range(speakers):
            write_wav(root / w / f"{s:08x}_nohash_0.wav", rng.normal(0, 0.1, rate), rate)
    os.makedirs(root / speech.NOISE_DIR)
    write_wav(root / speech.NOISE_DIR / "white.wav", rng.normal(0, 0.3, rate * 3), rate)
    (root / "validation_list.txt").write_text("yes/00000001_nohash_0.wav\ncat/00000001_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/00000002_nohash_0.wav\nno/00000002_nohash_0.wav\n")


def test_full_layout_with_label_list(tmp_path):
    _full_layout(tmp_path)
    idx = speech.scan(tmp_path, ["yes", "no", speech.SILENCE, speech.UNKNOWN],
                      unknown_share=0.5, silence_share=0.25, seed=1)
    counts = idx.counts()
    assert counts["validation"]["yes"] == 1 and counts["test"]["no"] == 1
    assert counts["train"]["yes"] == 6 and counts["train"]["no"] == 7
    # other words map to _unknown_, subsampled to half the keyword clips of the split
    assert counts["train"][speech.UNKNOWN] == int(np.ceil(0.5 * 13))
    assert counts["train"][speech.SILENCE] == int(np.ceil(0.25 * 13))
    assert speech.NOISE_DIR not in idx.labels
    waves, y, skipped = speech.load_waves(idx, idx.split("train"))
    assert waves.shape == (len(y), 16000) and skipped == 0
    sil = waves[y == idx.labels.index(speech.SILENCE)]
    assert np.abs(sil).max() > 0  # made from the noise recording


def test_no_label_list_every_folder_is_a_label(tmp_path):
    _full_layout(tmp_path)
    idx = speech.scan(tmp_path)
    assert idx.labels == ("cat", "dog", "no", "yes")
    with pytest.raises(speech.DataError, match="no folder for bird"):
        speech.scan(tmp_path, ["yes", "bird"])


def test_test_set_layout_uses_existing_unknown_folder():
    idx = speech.scan(MINI, list(speech.KWS12))
    counts = idx.counts()
    assert counts["test"]["yes"] == 1 and counts["validation"]["go"] == 1
    assert counts["train"][speech.UNKNOWN] == 2  # the folder as it is, not subsampled
    assert counts["train"][speech.SILENCE] >= 1   # synthesized from _background_noise_


def test_user_folder_hash_split_keeps_speakers_apart(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("on", "off"):
        os.makedirs(tmp_path / label)
        for s in range(30):
            for n in range(2):
                write_wav(tmp_path / label / f"spk{s}_nohash_{n}.wav", rng.normal(0, 0.1, 800), 8000)
    idx = speech.scan(tmp_path, None, validation_pct=20, testing_pct=20)
    split_of = {}
    for e in idx.entries:
        spk = os.path.basename(e.path).split("_nohash_")[0]
        split_of.setdefault(spk, set()).add(e.split)
    assert all(len(s) == 1 for s in split_of.values())
    assert {e.split for e in idx.entries} == {"train", "validation", "test"}
    assert speech.which_set("a/spk3_nohash_0.wav", 20, 20) == speech.which_set("b/spk3_nohash_7.wav", 20, 20)


@pytest.mark.parametrize("rate", [8000, 44100])
def test_resampling_keeps_the_tone(tmp_path, rate):
    path = tmp_path / "t.wav"
    write_wav(path, tone(440.0, 1.0, rate), rate)
    x = wav.load_clip(path, 16000, 16000)
    assert x.shape == (16000,)
    spec = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spec) * 16000 / 16000 - 440) <= 2


def test_short_long_stereo_float_and_24bit(tmp_path):
    write_wav(tmp_path / "short.wav", tone(300, 0.25, 16000), 16000)
    write_wav(tmp_path / "long.wav", tone(300, 2.5, 16000), 16000)
    stereo = np.stack([tone(300, 1, 16000), np.zeros(16000)], 1)
    write_wav(tmp_path / "stereo.wav", stereo, 16000)
    write_wav(tmp_path / "f32.wav", tone(300, 1, 16000), 16000, fmt="float32")
    write_wav(tmp_path / "p24.wav", tone(300, 1, 16000), 16000, fmt="pcm24")
    short = wav.load_clip(tmp_path / "short.wav")
    assert short.shape == (16000,) and np.all(short[4000:] == 0)
    assert wav.load_clip(tmp_path / "long.wav").shape == (16000,)
    st, _ = wav.read_wav(tmp_path / "stereo.wav")
    np.testing.assert_allclose(st, tone(300, 1, 16000) / 2, atol=1e-4)  # channels averaged
    f32, _ = wav.read_wav(tmp_path / "f32.wav")
    p24, _ = wav.read_wav(tmp_path / "p24.wav")
    np.testing.assert_allclose(f32, tone(300, 1, 16000), atol=1e-6)
    np.testing.assert_allclose(p24, tone(300, 1, 16000), atol=1e-6)


def test_broken_wav_is_named_or_skipped(tmp_path):
    _full_layout(tmp_path, words=("yes", "no"), speakers=3)
    (tmp_path / "yes" / "broken_nohash_0.wav").write_bytes(b"not audio at all")
    (tmp_path / "no" / "empty_nohash_0.wav").write_bytes(b"")
    idx = speech.scan(tmp_path, ["yes", "no"])
    with pytest.raises(wav.AudioError, match=r"(broken|empty)_nohash_0.wav: not a WAV file"):
        speech.load_waves(idx, idx.entries)
    waves, y, skipped = speech.load_waves(idx, idx.entries, skip_bad=True)
    assert skipped == 2 and len(y) == 6


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(speech.DataError, match="does not exist"):
        speech.scan(tmp_path / "nope")
    with pytest.raises(speech.DataError, match="has no <label>/\\*.wav"):
        speech.scan(tmp_path)


def test_feature_settings_roundtrip_and_shapes(tmp_path):
    fp = frontend.FeatureParams()
    assert frontend.feature_shape(fp) == (49, 40, 1)
    fp.save(tmp_path / "f.json")
    assert frontend.FeatureParams.load(tmp_path / "f.json") == fp
    x = np.stack([wav.load_clip(os.path.join(MINI, "yes", f)) for f in sorted(os.listdir(os.path.join(MINI, "yes")))[:2]])
    for kind, width in (("microfrontend", 40), ("logmel", 40), ("mfcc", 10)):
        p = frontend.FeatureParams(kind=kind, num_mfcc=10)
        f = frontend.compute(x, p)
        assert f.shape == (2, 49, width, 1) and np.isfinite(f).all()
    with pytest.raises(ValueError, match="kind: must be one of"):
        frontend.FeatureParams(kind="wavelet")


def test_microfrontend_range_matches_micro_speech():
    x = np.stack([wav.load_clip(os.path.join(MINI, "yes", sorted(os.listdir(os.path.join(MINI, "yes")))[0]))])
    f = frontend.compute(x, frontend.FeatureParams())
    # micro_speech: uint16 frontend output (about 0..670) × 10/256 → about 0..26
    assert 0 <= f.min() and f.max() < 27 and f.max() > 5


def test_augmentation_is_deterministic_and_training_only():
    rng = np.random.default_rng(0)
    clips = rng.normal(0, 0.1, (3, 16000)).astype(np.float32)
    noise = [rng.normal(0, 0.5, 40000).astype(np.float32)]
    p = augment.AugmentParams(views=3, time_masks=1, freq_masks=1)
    a = augment.waveform_views(clips, p, noise, 16000, seed=5)
    b = augment.waveform_views(clips, p, noise, 16000, seed=5)
    c = augment.waveform_views(clips, p, noise, 16000, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(a[:, 0], clips)  # view 0 is the clean clip
    feats = rng.uniform(0, 1, (3, 3, 49, 40, 1)).astype(np.float32)
    m1 = augment.spec_augment(feats, p, 1)
    np.testing.assert_array_equal(m1, augment.spec_augment(feats, p, 1))
    np.testing.assert_array_equal(m1[:, 0], feats[:, 0])
    with pytest.raises(ValueError, match="views: must be an integer >= 1"):
        augment.AugmentParams(views=0)


def test_tfds_source_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=24):
        x, y = map(np.array, zip(*speech.tfds_waves("train", labels=("yes", "no", speech.UNKNOWN))))
    assert x.shape[1] == 16000 and x.dtype == np.float32
    assert set(np.unique(y)) <= {0, 1, 2}
    assert 0 < len(y) <= 24  # _silence_ examples are dropped: not in the label list
