"""What a model will cost on the device before it is trained: flash, arena and MACs of its int8 model.

Flash, arena and multiply-accumulates depend on the architecture, its settings and the input size,
not on trained values. So a freshly built model, converted to int8 exactly as the export converts it
(with random calibration features) and loaded into TFLM, gives the trained model's figures: a recipe
that cannot fit the board is refused in seconds, not after minutes of training. The batch norms get
random statistics first, and every bias random values: left at their initial values they fold into
identical constants, which the converter stores once, and the flash figure would come out a few
hundred bytes low (150 bytes for tiny_conv's zero biases).
"""

import numpy as np

from microkws.errors import UserError


def model_costs(train_config, feature_config, label_count):
    """{"flash_bytes", "arena_bytes", "macs"} of the int8 model a TrainConfig would export."""
    from microkws._tensorflow import keras
    from microkws.device.tflm import smallest_arena
    from microkws.export.convert import to_int8_tflite
    from microkws.export.quantization import device_quantization
    from microkws.models import build_model, count_macs, with_softmax

    model = build_model(train_config.model_architecture, input_shape=feature_config.shape, label_count=label_count,
                        dropout_rate=train_config.dropout_rate, config=train_config.model_settings())
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for weight in layer.weights:  # gamma, beta, mean, variance: all positive is fine for each
                weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype(np.float32))
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.uniform(-0.5, 0.5, layer.bias.shape).astype(np.float32))
    representative = rng.uniform(0, 26, (8, int(np.prod(feature_config.shape)))).astype(np.float32)
    quantization = device_quantization("int8") if feature_config.preprocess == "micro" else None
    flatbuffer = to_int8_tflite(with_softmax(model), representative=representative, input_quantization=quantization,
                                weight_scales=train_config.weight_scales)
    return {"flash_bytes": len(flatbuffer), "arena_bytes": smallest_arena(flatbuffer), "macs": count_macs(model)}


BUDGET_FIGURES = ("flash_bytes", "arena_bytes", "macs")
"""The figures of `model_costs`, each named as the device.Targets field that limits it."""


def over_budget(costs, targets):
    """{figure: [cost, limit]} of every figure of `costs` above `targets` (a device.Targets); empty if it fits."""
    limits = {name: getattr(targets, name) for name in BUDGET_FIGURES}
    return {name: [costs[name], limit] for name, limit in limits.items() if costs[name] > limit}


def check_budget(costs, targets, *, what):
    """Raise a one-line UserError naming every figure of `costs` over `targets` (a device.Targets), and by how
    much; `what` names the model in the message."""
    over = [f"{name.replace('_bytes', '')} {cost:,} is {cost - limit:,} over the {limit:,} budget"
            for name, (cost, limit) in over_budget(costs, targets).items()]
    if over:
        raise UserError(f"{what} does not fit the budget: {'; '.join(over)}; choose smaller settings "
                        f"(--model_config) or a larger budget")
    return costs
