import numpy as np
import pytest

from tfkd.data.dataset import Data, sample_rows, views_dataset
from tfkd.data.frontend import FeatureParams


def test_each_epoch_draws_one_view_of_every_clip_once():
    n, k = 10, 3
    x = np.arange(n * k, dtype=np.float32).reshape(n, k, 1) + 0.5  # value = 3 * clip + view
    y = np.arange(n)
    ds = views_dataset(x, y, batch_size=n, views=True, seed=1)
    views_seen = set()
    for xb, yb in list(ds.as_numpy_iterator()) + list(ds.as_numpy_iterator()):
        clip, view = np.divmod(xb[:, 0].astype(int), k)
        assert sorted(yb.tolist()) == list(range(n))  # every clip once per epoch
        np.testing.assert_array_equal(clip, yb)  # the view belongs to its own clip
        views_seen |= set(view.tolist())
    assert views_seen == {0, 1, 2}


def test_cached_logits_travel_with_their_view():
    n, k = 6, 2
    x = np.arange(n * k, dtype=np.float32).reshape(n, k, 1)
    logits = -x  # logits of view (i, v) = -x[i, v]
    ds = views_dataset(x, np.zeros(n, int), batch_size=4, views=True, seed=0, logits=logits)
    for inputs, _ in ds.as_numpy_iterator():
        np.testing.assert_array_equal(inputs["teacher_logits"], -inputs["inputs"])


def test_views_dataset_refuses_mismatched_arrays():
    with pytest.raises(ValueError, match="views_dataset: x has 3 rows, y 2"):
        views_dataset(np.zeros((3, 1)), np.zeros(2), 2)
    with pytest.raises(ValueError, match="views_dataset: x has 2 views, logits 3"):
        views_dataset(np.zeros((2, 2, 1)), np.zeros(2), 2, views=True, logits=np.zeros((2, 3, 4)))


def test_data_splits_logits_and_representative(tiny_data, make_cnn):
    d = tiny_data
    assert (d.num_train, d.views, d.input_shape, d.labels) == (48, 2, (49, 40, 1), ("a", "b", "c"))
    assert d.steps_per_epoch(10) == 5
    x, y = d.arrays("test")
    batches = list(d.dataset("test", 5).as_numpy_iterator())
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)  # file order
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    model = make_cnn()
    lt = d.logits(model)
    xv, _ = d.train_arrays()
    assert lt.shape == (48, 2, 3)
    np.testing.assert_allclose(lt[:, 1], model.predict(xv[:, 1], verbose=0), atol=1e-5)
    rep = d.representative(5, seed=2)
    np.testing.assert_array_equal(rep, sample_rows(xv[:, 0], 5, 2))
    assert len(d.representative(1000, seed=0)) == 48
    with pytest.raises(ValueError, match="split: must be one of validation, test, got 'train'"):
        d.arrays("train")


def test_sample_rows_keeps_order_and_seed():
    x = np.arange(20)
    a = sample_rows(x, 5, seed=3)
    assert len(set(a.tolist())) == 5 and list(a) == sorted(a)
    np.testing.assert_array_equal(a, sample_rows(x, 5, seed=3))
    assert not np.array_equal(a, sample_rows(x, 5, seed=4))


def test_data_input_shape_follows_feature_settings():
    d = Data(["a", "b"], FeatureParams(kind="mfcc", num_mfcc=10), (np.zeros((2, 1, 49, 10, 1)), [0, 1]),
             (np.zeros((1, 49, 10, 1)), [0]), (np.zeros((1, 49, 10, 1)), [1]))
    assert d.input_shape == (49, 10, 1)
