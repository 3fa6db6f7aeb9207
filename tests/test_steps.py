import numpy as np
import pytest

from microkws._tensorflow import keras
from microkws.models import build_model
from microkws.models.ds_cnn import DsCnnConfig
from microkws.train.quantize import fake_quantize_kernel
from microkws.train.steps import make_train_step, make_train_steps


def _ds_cnn(weight_decay):
    config = DsCnnConfig(filters=8, blocks=1, first_dropout_rate=0.0, weight_decay=weight_decay)
    return build_model("ds_cnn", input_shape=(49, 40), label_count=4, dropout_rate=0.0, config=config)


@pytest.mark.parametrize("quantize", [False, True])
def test_weight_decay_reaches_the_gradients(quantize):
    """One SGD step with L2 weight decay w moves every decayed kernel by an extra rate * 2w * kernel."""
    keras.utils.set_random_seed(0)
    plain, decayed = _ds_cnn(0.0), _ds_cnn(0.01)
    decayed.set_weights(plain.get_weights())
    rng = np.random.default_rng(0)
    features = rng.uniform(0, 26, size=(8, 49 * 40)).astype(np.float32)
    labels = rng.integers(0, 4, size=8)
    rate, moved = 0.1, []
    for model in (plain, decayed):
        before = [v.numpy() for v in model.trainable_variables]
        step = make_train_step(model, keras.optimizers.SGD(learning_rate=rate), quantize=quantize)
        step(features, labels, np.float32(rate))
        moved.append([b - v.numpy() for b, v in zip(before, model.trainable_variables)])
    kernels_before = before  # the same in both models
    assert decayed.losses, "ds_cnn should carry L2 losses"
    regularised = {id(layer.kernel) for layer in decayed.layers
                   if getattr(layer, "kernel_regularizer", None) or getattr(layer, "depthwise_regularizer", None)}
    extra_by_weight = []
    for variable, kernel, plain_move, decayed_move in zip(decayed.trainable_variables, kernels_before,
                                                          *moved):
        extra = decayed_move - plain_move
        if id(variable) in regularised:
            if quantize:  # the step, and so the penalty, sees the int8-rounded kernel
                depthwise = len(kernel.shape) == 4 and kernel.shape[-1] == 1
                kernel = np.asarray(fake_quantize_kernel(kernel, depthwise=depthwise))
            np.testing.assert_allclose(extra, rate * 2 * 0.01 * kernel, rtol=2e-2, atol=2e-6)
            extra_by_weight.append(np.abs(extra).max())
        else:  # biases, batch-norm scales and the dense layer are not decayed
            np.testing.assert_allclose(extra, 0, atol=1e-6)
    assert len(extra_by_weight) >= 3 and min(extra_by_weight) > 0


@pytest.mark.parametrize("quantize", [False, True])
def test_several_steps_in_one_call_are_the_single_steps(quantize):
    """make_train_steps runs exactly make_train_step's steps, in order, with each step's own rate."""
    rng = np.random.default_rng(1)
    features = rng.uniform(0, 26, size=(5, 8, 49 * 40)).astype(np.float32)
    labels = rng.integers(0, 4, size=(5, 8))
    rates = np.array([0.1, 0.05, 0.05, 0.02, 0.01], np.float32)
    keras.utils.set_random_seed(0)
    one, many = _ds_cnn(0.01), _ds_cnn(0.01)
    many.set_weights(one.get_weights())
    step = make_train_step(one, keras.optimizers.Adam(), quantize=quantize)
    single = [[float(v) for v in step(x, y, r)] for x, y, r in zip(features, labels, rates)]
    losses, accuracies = make_train_steps(many, keras.optimizers.Adam(), quantize=quantize)(features, labels, rates)
    np.testing.assert_allclose(np.stack([losses, accuracies], axis=1), single, rtol=1e-5, atol=1e-6)
    for a, b in zip(one.get_weights(), many.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(one.get_weights()[0], _ds_cnn(0.01).get_weights()[0])  # it did train
