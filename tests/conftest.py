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

from tfkd._keras import keras  # noqa: E402


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
