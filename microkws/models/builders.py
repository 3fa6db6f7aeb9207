"""The builders, one module per architecture: importing this loads Keras."""

from microkws.models import (
    bc_resnet,
    conv,
    ds_cnn,
    low_latency_conv,
    low_latency_svdf,
    single_fc,
    tc_resnet,
    tiny_conv,
    tiny_embedding_conv,
)

MODELS = {
    "single_fc": single_fc.build,
    "conv": conv.build,
    "low_latency_conv": low_latency_conv.build,
    "low_latency_svdf": low_latency_svdf.build,
    "tiny_conv": tiny_conv.build,
    "tiny_embedding_conv": tiny_embedding_conv.build,
    "ds_cnn": ds_cnn.build,
    "bc_resnet": bc_resnet.build,
    "tc_resnet": tc_resnet.build,
}
"""Architecture name -> builder(*, input_shape, label_count, dropout_rate, config) -> keras.Model."""
