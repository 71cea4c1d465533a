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




def test_ds_cnn_xs_is_the_23kb_student_and_fits_its_flash_budget():
    import numpy as np

    from tfkd.compress.quantize import convert_int8

    model = build("ds_cnn_xs", (49, 40, 1), 12)
    assert model.count_params() == 8076
    assert model.get_layer("conv0").strides == (2, 4)
    # The same network by its parts, so a YAML giving the parts gets the preset.
    parts = build("ds_cnn", (49, 40, 1), 12, channels=32, blocks=4, first_stride=[2, 4])
    assert [w.shape for w in parts.weights] == [w.shape for w in model.weights]
    # Other sizes keep Hello Edge's 2x2 first stride.
    assert build("ds_cnn_s", (49, 40, 1), 12).get_layer("conv0").strides == (2, 2)
    flat = convert_int8(model, np.random.default_rng(0).normal(size=(8, 49, 40, 1)).astype(np.float32))
    assert len(flat) <= 23 * 1024
