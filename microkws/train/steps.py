"""The optimizer and the one compiled training step, plain or quantisation-aware.

One step serves both recipes: with `quantize`, the forward and backward pass run with every kernel
rounded to int8 as the export will store it (`weight_scales`) and the gradient updates the float
kernels (the straight-through estimator; see microkws.train.quantize). The loss adds `model.losses`,
so regularisers such as ds_cnn's L2 weight decay reach the gradients, as keras-io's custom training
loop does.
"""

from microkws._tensorflow import keras, tf
from microkws.train.quantize import batch_norm_multiplier, fake_quantize_kernel, quantized_kernels


def make_optimizer(config):
    """The Keras optimizer a TrainConfig names, at its first learning rate."""
    rate = config.learning_rate[0]
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(learning_rate=rate, momentum=0.9, nesterov=True)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=rate)
    if config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate=rate, weight_decay=config.weight_decay)
        # Decay shrinks kernels only: decaying biases and batch-norm scales and offsets just fights the data.
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return optimizer
    return keras.optimizers.SGD(learning_rate=rate)


def make_train_step(model, optimizer, *, quantize=False, weight_scales="per_channel", label_smoothing=0.0):
    """A compiled step: (features, labels, learning rate) -> (loss, batch accuracy), updating the model.

    The loss returned is the cross-entropy alone (what the original logged), against targets smoothed
    by `label_smoothing`; the gradients come from it plus the model's regularisation losses.
    """
    # No jit_compile: XLA made these small models many times slower on CPUs.
    return tf.function(_step_function(model, optimizer, quantize=quantize, weight_scales=weight_scales,
                                      label_smoothing=label_smoothing))


def make_train_steps(model, optimizer, *, quantize=False, weight_scales="per_channel", label_smoothing=0.0):
    """Several steps in one compiled call, as Keras' `steps_per_execution`: (features [k, batch, ...],
    labels [k, batch], learning rates [k]) -> (losses [k], batch accuracies [k]).

    One call per step cost tiny_conv about a quarter of its step time in Python and dispatch
    (bench/RESULTS.md, Training); the steps and their order are exactly make_train_step's.
    """
    step = _step_function(model, optimizer, quantize=quantize, weight_scales=weight_scales,
                          label_smoothing=label_smoothing)

    @tf.function(reduce_retracing=True)
    def train_steps(features, labels, learning_rates):
        count = tf.shape(features)[0]
        losses = tf.TensorArray(tf.float32, size=count)
        accuracies = tf.TensorArray(tf.float32, size=count)
        for i in tf.range(count):
            loss, batch_accuracy = step(features[i], labels[i], learning_rates[i])
            losses = losses.write(i, loss)
            accuracies = accuracies.write(i, batch_accuracy)
        return losses.stack(), accuracies.stack()

    return train_steps


def _step_function(model, optimizer, *, quantize, weight_scales, label_smoothing):
    """The training step as a plain function of tensors, for tf.function to compile."""
    loss_fn = _cross_entropy(model.outputs[0].shape[-1], label_smoothing)
    rounded = _KernelRounding(model, per_tensor=weight_scales == "per_tensor") if quantize else None

    def train_step(features, labels, learning_rate):
        optimizer.learning_rate.assign(learning_rate)
        floats = rounded.round() if rounded else None
        with tf.GradientTape() as tape:
            logits = model(features, training=True)
            loss = loss_fn(labels, logits)
            total = loss + tf.add_n(model.losses) if model.losses else loss
        gradients = tape.gradient(total, model.trainable_variables)
        if rounded:
            rounded.restore(floats)  # straight-through: the rounded kernels' gradient updates the floats
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        correct = tf.equal(tf.argmax(logits, axis=-1), tf.cast(labels, tf.int64))
        return tf.cast(loss, tf.float32), tf.reduce_mean(tf.cast(correct, tf.float32))

    return train_step


def _cross_entropy(label_count, label_smoothing):
    """(labels, logits) -> mean cross-entropy; Keras' sparse loss has no smoothing, so smoothing goes one-hot."""
    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    dense = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)
    return lambda labels, logits: dense(tf.one_hot(labels, label_count), logits)


class _KernelRounding:
    """Swaps a model's kernels for their int8-rounded values and back, inside a compiled step."""

    def __init__(self, model, *, per_tensor=False):
        self.kernels = quantized_kernels(model)
        self.per_tensor = per_tensor
        # Keras 3 names a depthwise layer's weights `kernel`; TFLite quantises them per channel (the last two axes).
        depthwise = {id(layer.kernel) for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)}
        self.depthwise = [id(v) in depthwise for v in self.kernels]
        folded = _batch_norm_after(model)
        self.batch_norms = [folded.get(id(v)) for v in self.kernels]

    def round(self):
        """Round every kernel in place; returns the float values to restore."""
        floats = [tf.identity(v.value) for v in self.kernels]
        for variable, is_depthwise, batch_norm in zip(self.kernels, self.depthwise, self.batch_norms):
            multiplier = batch_norm_multiplier(batch_norm) if batch_norm and self.per_tensor else None
            variable.assign(fake_quantize_kernel(variable.value, depthwise=is_depthwise, per_tensor=self.per_tensor,
                                                 multiplier=multiplier))
        return floats

    def restore(self, floats):
        for variable, value in zip(self.kernels, floats):
            variable.assign(value)


def _batch_norm_after(model):
    """{id(kernel variable): the batch-norm layer that takes its layer's output}: what the converter folds."""
    after = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for before in model.layers:
                if getattr(before, "kernel", None) is not None and before.output is layer.input:
                    after[id(before.kernel)] = layer
    return after
