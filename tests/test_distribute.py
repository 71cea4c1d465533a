"""Strategy choice, chief and worker indices, and global-batch training under mirrored replicas."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfkd import distribute
from tfkd._keras import keras
from tfkd.train import replicas


def _tf_config(task_type, index, chief=False):
    cluster = {"worker": ["localhost:1", "localhost:2"]}
    if chief:
        cluster["chief"] = ["localhost:0"]
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})}


@pytest.mark.parametrize("env,gpus,want", [
    ({}, 0, "none"),
    ({}, 1, "none"),
    ({}, 2, "mirrored"),
    ({"TPU_NAME": "local"}, 2, "tpu"),
    (_tf_config("worker", 1), 2, "multi_worker"),
])
def test_auto_follows_tensorflow_conventions(env, gpus, want):
    assert distribute.choose("auto", env=env, gpus=gpus) == want


def test_explicit_names_are_kept_and_unknown_ones_refused():
    assert distribute.choose("mirrored", env={}, gpus=0) == "mirrored"
    with pytest.raises(distribute.DistributeError,
                       match="^distribute.strategy: must be one of auto, none, mirrored, "
                             "multi_worker, tpu, got 'mirror'$"):
        distribute.choose("mirror")
    with pytest.raises(distribute.DistributeError, match="^TF_CONFIG: not valid JSON$"):
        distribute.choose("auto", env={"TF_CONFIG": "{nope"})


def test_chief_and_worker_indices():
    assert distribute.worker({}) == (1, 0) and distribute.is_chief({})
    assert distribute.worker(_tf_config("worker", 0)) == (2, 0)
    assert distribute.is_chief(_tf_config("worker", 0))
    assert not distribute.is_chief(_tf_config("worker", 1))
    assert distribute.worker(_tf_config("chief", 0, chief=True)) == (3, 0)
    assert distribute.worker(_tf_config("worker", 0, chief=True)) == (3, 1)
    assert not distribute.is_chief(_tf_config("worker", 0, chief=True))


def test_none_is_the_default_strategy():
    s = distribute.resolve("none")
    assert s is tf.distribute.get_strategy()
    assert distribute.name_of(s) == "none" and distribute.replicas(s) == 1


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(3)])


def test_mirrored_steps_on_the_global_batch_like_one_device():
    """Two replicas on the two logical CPUs (tests/conftest.py) take the same SGD steps
    as one device with the same global batch of 8."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 4)).astype(np.float32)
    y = rng.integers(0, 3, 24).astype(np.int32)

    def fit(strategy):
        with strategy.scope():
            m = _model()
            m.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
        m.fit(distribute.shard_policy(ds, "data"), epochs=2, verbose=0)
        return m.get_weights()

    mirrored = distribute.resolve("mirrored")
    assert distribute.name_of(mirrored) == "mirrored" and distribute.replicas(mirrored) == 2
    for a, b in zip(fit(mirrored), fit(distribute.resolve("none"))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_local_cluster_gives_each_worker_its_place_on_free_ports():
    configs = distribute.local_cluster(3)
    assert [distribute.worker({"TF_CONFIG": c}) for c in configs] == [(3, 0), (3, 1), (3, 2)]
    assert [distribute.is_chief({"TF_CONFIG": c}) for c in configs] == [True, False, False]
    ports = [a.rsplit(":", 1)[1] for a in json.loads(configs[0])["cluster"]["worker"]]
    assert len(set(ports)) == 3 and all(p.isdigit() and int(p) > 0 for p in ports)


def test_shard_policy_sets_the_option():
    ds = distribute.shard_policy(tf.data.Dataset.range(4), "off")
    assert ds.options().experimental_distribute.auto_shard_policy == \
        tf.data.experimental.AutoShardPolicy.OFF
    with pytest.raises(distribute.DistributeError, match="shard policy: must be one of"):
        distribute.shard_policy(ds, "rows")


def _bn_dropout_model():
    keras.utils.set_random_seed(3)
    inp = keras.layers.Input((6, 5, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.5)(x)
    return keras.Model(inp, keras.layers.Dense(3)(x))


def _fit_bn_dropout(strategy, x, y, epochs=3, global_batch=True):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        m = _bn_dropout_model()
        m.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ds = distribute.shard_policy(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), "data")
    if not global_batch:
        return m, m.fit(ds, epochs=epochs, verbose=0).history["loss"]
    with replicas.global_batch(m, strategy):
        hist = m.fit(ds, epochs=epochs, verbose=0).history["loss"]
    return m, hist


@pytest.mark.parametrize("n", [24, 19])  # 19: the short last batch of 3 splits 2 + 1
def test_global_batch_makes_replicas_step_like_one_device(n):
    """Batch norm and dropout on two mirrored replicas (halves of a global batch of 8) take
    the steps plain Keras takes on one device: same losses, weights and moving statistics."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 6, 5, 1)).astype(np.float32)
    y = rng.integers(0, 3, n).astype(np.int32)
    one, one_loss = _fit_bn_dropout(distribute.resolve("none"), x, y)
    two, two_loss = _fit_bn_dropout(distribute.resolve("mirrored"), x, y)
    np.testing.assert_allclose(two_loss, one_loss, rtol=1e-5)
    for a, b in zip(two.get_weights(), one.get_weights()):  # moving mean/variance included
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The layers got their own settings back (the saved model is the one-device one).
    bn = [l for l in two.layers if isinstance(l, keras.layers.BatchNormalization)][0]
    assert not bn.synchronized and bn.fused
    assert "_assign_moving_average" not in vars(bn) and "compute_loss" not in vars(two)
    assert "dropout" not in vars([l for l in two.layers if isinstance(l, keras.layers.Dropout)][0]
                                 ._random_generator)


def test_without_global_batch_the_replicas_differ():
    """The check above can fail: plain per-replica batch norm and dropout give other steps."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(24, 6, 5, 1)).astype(np.float32)
    y = rng.integers(0, 3, 24).astype(np.int32)
    _, one_loss = _fit_bn_dropout(distribute.resolve("none"), x, y)
    _, plain = _fit_bn_dropout(distribute.resolve("mirrored"), x, y, global_batch=False)
    assert not np.allclose(plain, one_loss, rtol=1e-3)


def test_global_batch_changes_nothing_on_one_replica():
    m = _bn_dropout_model()
    bn = [l for l in m.layers if isinstance(l, keras.layers.BatchNormalization)][0]
    with replicas.global_batch(m, distribute.resolve("none")):
        assert not bn.synchronized
