"""The benchmark scripts' own logic: a peer recipe whose steps really do what they claim."""

import importlib.util
import os

import numpy as np
import pytest

from tfkd._keras import keras

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name):
    path = os.path.join(HERE, "..", "benchmarks", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_cnn():
    return keras.Sequential([
        keras.layers.Input((12, 10, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(3)])


@pytest.mark.parametrize("clips", [200, 1900])
def test_peer_pruning_reaches_its_target_sparsity(clips):
    # 1,900 clips at batch 64 is 60 steps: tfmot's default frequency (100) never fired there.
    peer = _load("peer_recipe")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(clips, 12, 10, 1)).astype("float32")
    y = rng.integers(0, 3, clips).astype("int32")
    model = _tiny_cnn()
    pruned, sparsity = peer.guide_prune(model, x, y)
    kernels = [l.kernel.numpy() for l in pruned.layers if hasattr(l, "kernel")]
    measured = sum(int(np.sum(k == 0)) for k in kernels) / sum(k.size for k in kernels)
    assert sparsity == pytest.approx(measured)
    assert sparsity >= 0.45
