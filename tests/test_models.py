import pytest

import tfkd
from tfkd import keras
from tfkd.models import build


def test_unknown_model_name_lists_the_zoo():
    with pytest.raises(tfkd.UnknownNameError, match="Unknown model 'ds_cnn_xl'. Available: ds_cnn,"):
        build("ds_cnn_xl", (49, 40, 1), 12)


def test_user_model_can_be_registered():
    from tfkd.models import register

    def mine(input_shape, num_labels):
        inp = keras.Input(input_shape)
        return keras.Model(inp, keras.layers.Dense(num_labels)(keras.layers.Flatten()(inp)))

    register("test_mine", mine)
    assert build("test_mine", (4, 4, 1), 3).output_shape == (None, 3)
    with pytest.raises(ValueError, match="model 'test_mine' is already registered"):
        register("test_mine", mine)
    register("test_mine", mine, overwrite=True)  # (the registry has no removal)


