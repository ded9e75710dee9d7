"""The layers of :class:`fastnn.models.CNN` (defined in :mod:`fastnn.models.layers`), under the short name
users type: ``from fastnn.layers import Conv2D, MaxPool2D, Dense, Dropout, ...``."""

from .models.layers import (HIDDEN_ACTIVATIONS, LAYER_TYPES, PADDINGS, AvgPool2D, BatchNorm, Conv2D, Dense, Dropout,
                            Flatten, GlobalAvgPool2D, MaxPool2D, check_input_shape, images_to_rows, infer_shapes,
                            layer_from_config, rows_to_images)

__all__ = ["Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Dropout", "BatchNorm", "Flatten", "Dense",
           "LAYER_TYPES", "PADDINGS", "HIDDEN_ACTIVATIONS", "infer_shapes", "rows_to_images", "images_to_rows",
           "layer_from_config", "check_input_shape"]
