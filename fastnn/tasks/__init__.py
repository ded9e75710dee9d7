"""The coursework's tasks (``fastnn.tasks.classifier``), the toy network and the epoch benchmark, as one package."""

from .classifier import (  # noqa: F401  (every name fastnn.tasks had)
    RECIPES, __all__, _report, atomic_write, autoencoder, classify, confusion, confusion_matrix, demo,
    first_layer_weights, lr_study, mnist_binary, mnist_multiclass, psnr, train_classifier,
)
