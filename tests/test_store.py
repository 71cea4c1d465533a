"""The feature store: round trip, checksums, the tf.data reader and feature parity."""

import collections
import os

import numpy as np
import pytest
import tensorflow as tf

from tfkd._keras import keras
from tfkd.data import augment, frontend, speech, store, stream

MINI = os.path.join(os.path.dirname(__file__), "..", "tfkd", "assets", "speech_commands_mini")
LABELS = ["a", "b", "c"]
SHAPE = (6, 5, 1)  # frontend.feature_shape of PARAMS
PARAMS = frontend.FeatureParams(kind="logmel", sample_rate=1000, clip_ms=200, window_ms=40,
                                stride_ms=30, num_channels=5, upper_band_hz=500.0)


def _chunks(x, y, size):
    for i in range(0, len(y), size):
        keys = tuple(f"clip{j}" for j in range(i, min(i + size, len(y))))
        yield stream.Chunk(x[i:i + size], y[i:i + size], keys)


def _random_split(n, k, seed):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, k) + SHAPE).astype(np.float32),
            rng.integers(0, len(LABELS), n).astype(np.int32))


@pytest.fixture
def written(tmp_path):
    """A store of 23 training clips × 3 views (shards of 5) and 7 test clips × 1 view."""
    assert frontend.feature_shape(PARAMS) == SHAPE
    x, y = _random_split(23, 3, 0)
    xt, yt = _random_split(7, 1, 1)
    st = store.write_store(str(tmp_path / "store"),
                           {"train": _chunks(x, y, 4), "test": _chunks(xt, yt, 3)},
                           labels=LABELS, params=PARAMS, meta={"seed": 0}, shard_clips=5)
    return st, x, y, xt, yt


def test_round_trip_is_bit_exact(written):
    st, x, y, xt, yt = written
    again = store.FeatureStore.open(st.folder)
    assert again.labels == LABELS and again.params == PARAMS and again.feature_shape == SHAPE
    assert (again.clips("train"), again.views("train"), again.clips("test")) == (23, 3, 7)
    assert len(again.files("train")) == 5  # 5 + 5 + 5 + 5 + 3
    assert again.counts("train") == {l: int(np.sum(y == i)) for i, l in enumerate(LABELS)}
    got = list(again.batches("train", 8, view="all"))
    np.testing.assert_array_equal(np.concatenate([b["x"].numpy() for b in got]), x)
    np.testing.assert_array_equal(np.concatenate([b["y"].numpy() for b in got]), y)
    np.testing.assert_array_equal(np.concatenate([b["clip"].numpy() for b in got]), np.arange(23))
    np.testing.assert_array_equal(again.labels_of("train"), y)
    assert again.keys("test") == [f"clip{i}" for i in range(7)]
    test = np.concatenate([b["x"].numpy() for b in again.batches("test", 4, view=0)])
    np.testing.assert_array_equal(test, xt[:, 0])
    again.verify()


def test_a_changed_shard_is_named(written):
    st = written[0]
    st.verify()
    path = st.files("train")[2]
    with open(path, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(store.StoreError, match=r"^store: shard train-00002.tfrecord in .* does not "
                                                r"match its manifest checksum"):
        st.verify()
    st.verify(["test"])  # the other split is intact
    os.remove(st.files("test")[0])
    with pytest.raises(store.StoreError, match="shard test-00000.tfrecord is missing"):
        st.verify(["test"])


def test_missing_manifest_and_bad_view_are_one_line_errors(written, tmp_path):
    with pytest.raises(store.StoreError, match=r"no manifest.json in .*nothing"):
        store.FeatureStore.open(str(tmp_path / "nothing"))
    with pytest.raises(store.StoreError, match=r"view must be 'random', 'all' or 0..0 for test, got 1"):
        written[0].batches("test", 4, view=1)
    with pytest.raises(store.StoreError, match="no split 'validation'"):
        written[0].clips("validation")


def _epoch(it):
    b = [next(it) for _ in range(3)]  # 23 clips in batches of 8
    return {k: np.concatenate([e[k].numpy() for e in b]) for k in b[0]}


def test_reader_draws_one_view_per_clip_per_epoch_deterministically(written):
    st, x, y, _, _ = written
    ds = st.batches("train", 8, view="random", shuffle=True, seed=3, shuffle_buffer=6)
    it = iter(ds.repeat(2))
    e1, e2 = _epoch(it), _epoch(it)
    for e in (e1, e2):
        np.testing.assert_array_equal(np.sort(e["clip"]), np.arange(23))  # each clip once
        np.testing.assert_array_equal(e["x"], x[e["clip"], e["view"]])
        np.testing.assert_array_equal(e["y"], y[e["clip"]])
    assert not np.array_equal(e1["clip"], e2["clip"])  # reshuffled
    assert not np.array_equal(e1["view"][np.argsort(e1["clip"])], e2["view"][np.argsort(e2["clip"])])
    assert len(set(e1["view"])) == 3
    again = _epoch(iter(st.batches("train", 8, view="random", shuffle=True, seed=3, shuffle_buffer=6)))
    for k in e1:
        np.testing.assert_array_equal(again[k], e1[k])


def test_logits_join_by_clip_and_view(written):
    st = written[0]
    logits = np.random.default_rng(0).normal(size=(23, 3, 4)).astype(np.float32)
    ds = store.join_logits(st.batches("train", 8, view="random", shuffle=True, seed=1), logits)
    for b in ds:
        np.testing.assert_array_equal(b["logits"].numpy(), logits[b["clip"].numpy(), b["view"].numpy()])
    plain = store.join_logits(st.batches("test", 4), logits[:7, 0])
    for b in plain:
        np.testing.assert_array_equal(b["logits"].numpy(), logits[b["clip"].numpy(), 0])


@pytest.mark.parametrize("workers", [2, 7])  # 2: whole shard files per worker; 7: records
def test_worker_shards_are_disjoint_and_complete(written, workers):
    st = written[0]
    seen = []
    for i in range(workers):
        ds = st.batches("train", 4, view="random", shuffle=True, seed=0, shard=(workers, i))
        seen.append(np.concatenate([b["clip"].numpy() for b in ds]))
    counts = collections.Counter(np.concatenate(seen).tolist())
    assert sorted(counts) == list(range(23)) and set(counts.values()) == {1}


def test_predict_and_sample(written):
    st, x, _, _, _ = written
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(4)])
    got = st.predict(model, "train", batch_size=7)
    want = model.predict(x.reshape((-1,) + SHAPE), verbose=0).reshape(23, 3, 4)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    s = st.sample("train", 5, seed=2, view=1)
    assert s.shape == (5,) + SHAPE
    rows = [int(np.flatnonzero((x[:, 1] == r).all(axis=(1, 2, 3)))[0]) for r in s]
    assert rows == sorted(set(rows))  # five distinct clips, in clip order
    assert len(st.sample("test", 100)) == 7


def test_store_features_equal_the_frontend_path_on_real_clips(tmp_path):
    """The streamed, chunked store holds exactly what frontend.compute gives for the same views."""
    fp = frontend.FeatureParams()
    ap = augment.AugmentParams(views=3, time_masks=1, freq_masks=1)
    index = speech.scan(MINI, speech.KWS12)
    noise = speech.load_noise(index.noise_files, fp.sample_rate)
    entries = [e for e in index.split("train") if e.path is not None][:20]
    waves, y, _ = speech.load_waves(index, entries, fp.sample_rate, fp.clip_samples, noise=noise)
    views = augment.waveform_views(waves, ap, noise, fp.sample_rate, seed=7)
    want = frontend.compute(views.reshape(-1, fp.clip_samples), fp).reshape((20, 3) + frontend.feature_shape(fp))
    want = augment.spec_augment(want, ap, 8)
    for chunk in (6, 64):
        clips = stream.folder_clips(index, entries, fp.sample_rate, fp.clip_samples, noise=noise, chunk=chunk)
        st = store.write_store(str(tmp_path / f"s{chunk}"),
                               {"train": stream.featurize(clips, fp, augment_params=ap, noise=noise, seed=7)},
                               labels=index.labels, params=fp, shard_clips=8)
        got = np.concatenate([b["x"].numpy() for b in st.batches("train", 16, view="all")])
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(st.labels_of("train"), y)
        assert st.keys("train") == [os.path.relpath(e.path, index.root) for e in entries]


def test_augmented_views_do_not_depend_on_chunking():
    rng = np.random.default_rng(0)
    clips = rng.normal(0, 0.1, (5, 800)).astype(np.float32)
    noise = [rng.normal(0, 0.5, 3000).astype(np.float32)]
    p = augment.AugmentParams(views=3, time_shift_ms=20)
    whole = augment.waveform_views(clips, p, noise, 8000, seed=1)
    parts = np.concatenate([augment.waveform_views(clips[:2], p, noise, 8000, 1, ids=[0, 1]),
                            augment.waveform_views(clips[2:], p, noise, 8000, 1, ids=[2, 3, 4])])
    np.testing.assert_array_equal(whole, parts)
    assert not np.array_equal(whole[:, 1], whole[:, 2])


def test_tfds_source_streams_into_the_store(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    labels = ("yes", "no", speech.UNKNOWN)
    fp = frontend.FeatureParams()
    with tfds.testing.mock_data(num_examples=12):
        pairs = speech.tfds_waves("train", labels=labels)
        st = store.write_store(str(tmp_path / "s"),
                               {"train": stream.featurize(stream.tfds_clips(pairs, chunk=5), fp)},
                               labels=labels, params=fp)
    assert 0 < st.clips("train") <= 12 and st.views("train") == 1
    assert set(np.unique(st.labels_of("train"))) <= {0, 1, 2}
    assert st.keys("train")[0] == "tfds:0"


def test_data_stage_store_is_reproducible_and_mixes_labels(tmp_path):
    from tfkd.config import DataConfig

    data = DataConfig(path=MINI, labels=speech.KWS12, augment=augment.AugmentParams(views=2))
    fp = frontend.FeatureParams()
    a = stream.build_store(str(tmp_path / "a"), data, fp, seed=3, chunk=16, shard_clips=10)
    b = stream.build_store(str(tmp_path / "b"), data, fp, seed=3, chunk=64, shard_clips=10)
    assert [s["sha256"] for s in a.manifest["splits"]["train"]["shards"]] == \
        [s["sha256"] for s in b.manifest["splits"]["train"]["shards"]]  # chunking changes nothing
    index = speech.scan(MINI, speech.KWS12, seed=3)
    for split in speech.SPLITS:
        assert a.clips(split) == len(index.split(split)) and a.counts(split) == index.counts()[split]
    assert (a.views("train"), a.views("validation"), a.views("test")) == (2, 1, 1)
    keys = a.keys("train")
    assert keys != sorted(keys)  # a seeded shuffle: shards mix the labels
    assert a.manifest["meta"]["augment"]["views"] == 2


def test_data_stage_streams_the_tfds_source(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from tfkd.config import DataConfig

    data = DataConfig(path=None, labels=("yes", "no", speech.UNKNOWN),
                      augment=augment.AugmentParams(views=2))
    with tfds.testing.mock_data(num_examples=10):
        st = stream.build_store(str(tmp_path / "s"), data, frontend.FeatureParams(), seed=0, chunk=4)
    assert (st.views("train"), st.views("test")) == (2, 1)
    assert all(0 < st.clips(s) <= 10 for s in speech.SPLITS)
    assert st.keys("validation")[0] == "tfds:validation:0"
    assert st.manifest["meta"]["source"] == "tfds:speech_commands"


def _steps(batches):
    return [({k: v.numpy() for k, v in x.items()}, y.numpy()) for x, y in batches]


def test_replicas_split_each_global_batch_of_the_one_process_stream(written, monkeypatch):
    """Two mirrored replicas (tests/conftest.py's logical CPUs), as Keras' fit feeds them,
    reading as worker 0 of a two-worker cluster: at every step of two epochs their
    batches, in replica order, are the one-process batch, the short last one (3 clips of
    a global batch of 10) included."""
    import json

    from tfkd import distribute
    from tfkd.data.store_data import StoreData

    st = written[0]
    logits = np.random.default_rng(0).normal(size=(23, 3, 4)).astype(np.float32)
    data = StoreData(st)
    one = data.train_dataset(10, seed=5, logits=logits)
    single = [_steps(one) for _ in range(2)]
    assert not np.array_equal(single[0][0][1], single[1][0][1])  # reshuffled between epochs
    mirrored = distribute.resolve("mirrored")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["localhost:1", "localhost:2"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert distribute.worker() == (2, 0)
    dist = mirrored.experimental_distribute_dataset(data.train_dataset(10, seed=5, logits=logits))
    for epoch in single:
        steps = list(dist)
        assert len(steps) == len(epoch) == data.steps_per_epoch(10) == 3
        for (x, y), (want_x, want_y) in zip(steps, epoch):
            parts = [_steps([p])[0] for p in mirrored.experimental_local_results((x, y))]
            assert len(parts) == 2 and len(parts[0][1]) <= 5 and len(parts[1][1]) <= 5
            np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), want_y)
            for k in want_x:
                np.testing.assert_array_equal(np.concatenate([p[0][k] for p in parts]), want_x[k])


def test_unknown_shard_mode_is_named(written):
    from tfkd.data.store_data import StoreData

    with pytest.raises(ValueError, match="^distribute.shard: must be one of batch, files, got 'rows'$"):
        StoreData(written[0], shard="rows")


def test_files_mode_gives_each_worker_its_own_whole_batches(written, monkeypatch):
    import json

    from tfkd.data.store_data import StoreData

    data = StoreData(written[0], shard="files")
    assert data.steps_per_epoch(4) == 6  # one process: ceil(23 / 4)
    seen = []
    for i in range(2):
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["localhost:1", "localhost:2"]},
                                                    "task": {"type": "worker", "index": i}}))
        assert data.steps_per_epoch(4) == 4  # 23 clips // 2 workers // 4 = 2 batches each
        ys = [y.numpy() for _, y in data.train_dataset(4, seed=0)]
        assert [len(y) for y in ys] == [4, 4]
        seen.append(np.concatenate(ys))
    assert len(np.concatenate(seen)) == 16
