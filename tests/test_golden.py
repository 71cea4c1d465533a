"""Golden-vector selection: distinct labels first, correctly classified clips preferred."""

import numpy as np
import pytest

from tfkd.export import golden


def test_one_clip_per_label_before_any_second():
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    pred = y.copy()
    rows = golden.select(y, pred, 3)
    assert sorted(y[rows]) == [0, 1, 2]
    assert rows == [0, 3, 5]


def test_prefers_correctly_classified_clips():
    y = np.array([0, 0, 1, 1])
    pred = np.array([1, 0, 0, 1])  # rows 0 and 2 are wrong
    assert golden.select(y, pred, 2) == [1, 3]


def test_falls_back_to_wrong_clips_and_cycles_labels():
    y = np.array([0, 0, 1])
    pred = np.array([1, 1, 1])
    assert golden.select(y, pred, 5) == [0, 2, 1]


def test_grouped_test_split_no_longer_gives_one_class():
    # The flagship test split is grouped by label: its first 4 clips were all label 10.
    y = np.repeat(np.arange(12)[::-1], 20)
    rows = golden.select(y, y, 4)
    assert len(set(y[rows])) == 4


@pytest.mark.parametrize("n", [0, 1])
def test_small_n(n):
    assert len(golden.select([2, 1], [2, 1], n)) == n


def test_mismatched_lengths_fail():
    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        golden.select([0, 1, 2], [0, 1], 2)
