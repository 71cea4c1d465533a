import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

# Two logical CPU devices, so MirroredStrategy can be tested on one CPU. This must
# happen before TensorFlow initializes its devices, hence here.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # devices already initialized
    pass

from tfkd import keras  # noqa: E402
from tfkd.data.dataset import Data  # noqa: E402
from tfkd.data.frontend import FeatureParams  # noqa: E402


@pytest.fixture
def tiny_pair():
    """A tiny teacher/student pair on 8 features and 3 classes, plus data."""
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(16, activation="relu"),
                                keras.layers.Dense(3)], name="teacher")
    student = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(4, activation="relu"),
                                keras.layers.Dense(3)], name="student")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0.5).astype("int32")
    return teacher, student, x, y


def _clips(rng, n, shape):
    """Features whose label is readable from them: the class is the brightest third."""
    y = rng.integers(0, 3, n).astype(np.int32)
    x = rng.normal(size=(n,) + shape).astype(np.float32)
    for i, c in enumerate(y):
        x[i, :, c * 2:(c + 1) * 2] += 2.0
    return x, y


@pytest.fixture
def tiny_data():
    """A :class:`Data` of 48 training clips (2 views each), 12 validation and 12 test clips
    of 6x6x1 features and 3 labels (feature settings are only recorded, never computed)."""
    rng = np.random.default_rng(0)
    shape = (6, 6, 1)
    x, y = _clips(rng, 48, shape)
    views = np.stack([x, x + rng.normal(scale=0.1, size=x.shape).astype(np.float32)], axis=1)
    xv, yv = _clips(rng, 12, shape)
    xt, yt = _clips(rng, 12, shape)
    return Data(["a", "b", "c"], FeatureParams(), (views, y), (xv, yv), (xt, yt))


def small_cnn(width=4, shape=(6, 6, 1), n=3, name=None):
    """A functional conv model of a few hundred parameters that converts to int8."""
    inp = keras.Input(shape, name="features")
    h = keras.layers.Conv2D(width, 3, padding="same", name="conv")(inp)
    h = keras.layers.ReLU(name="relu")(h)
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    return keras.Model(inp, keras.layers.Dense(n, name="logits")(h), name=name)


@pytest.fixture
def make_cnn():
    """Builds :func:`small_cnn` models."""
    return small_cnn


@pytest.fixture(scope="session")
def kws_like():
    """48 random 49x40 'feature maps' with 4 labels readable from them."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 26, (48, 49, 40, 1)).astype(np.float32)
    y = (x[:, :10].mean((1, 2, 3)) > 13).astype(np.int32) + 2 * (x[:, 30:].mean((1, 2, 3)) > 13)
    return x, y


@pytest.fixture
def small_ds_cnn():
    """Builds a two-block DS-CNN for 49x40 inputs: ``small_ds_cnn(channels=8, n=4)``."""
    from tfkd.models import build

    keras.utils.set_random_seed(0)
    return lambda channels=8, n=4: build("ds_cnn", (49, 40, 1), n, channels=channels, blocks=2)


@pytest.fixture
def teach():
    """``teach(x, y, teacher, epochs=2)``: a ``train(model, callbacks)`` that distils from
    ``teacher``, as pruning and QAT take it."""
    import tfkd

    def make(x, y, teacher, epochs=2):
        def train(model, callbacks):
            d = tfkd.Distiller(student=model, teacher=teacher, temperature=2.0, alpha=0.5)
            d.compile(optimizer=keras.optimizers.Adam(0.01))
            d.fit(x, y, epochs=epochs, batch_size=8, callbacks=callbacks, verbose=0)
        return train
    return make
