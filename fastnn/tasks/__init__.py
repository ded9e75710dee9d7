"""The coursework's tasks, end to end: train, evaluate, and write plots and a report for each.

Each task is a function returning a dict of results (its ``headline`` figures among them) and writing,
into ``out``, PNG plots plus ``<task>.json`` and ``<task>.md``.  The ``fastnn`` command line runs
every task registered in :mod:`fastnn.tasks.registry` as a subcommand and prints its headline figures
as ``name: value`` lines.  Data: the real hw36 / MNIST files from ``data`` (or ``$FASTNN_DATA``); the
36-class tasks fall back to the generated set when no data folder is configured.

One module per task or family:

- :mod:`~fastnn.tasks.classifier`: ``classify``, ``first_layer_weights``, ``lr_study``, ``confusion``;
- :mod:`~fastnn.tasks.cnn`: ``fastnn cnn``, the convolutional classifier beside the MLP;
- :mod:`~fastnn.tasks.reconstruction`: ``autoencoder`` and ``psnr``;
- :mod:`~fastnn.tasks.mnist`: ``mnist_binary``, ``mnist_multiclass``;
- :mod:`~fastnn.tasks.demo`: ``demo``, the main job;
- :mod:`~fastnn.tasks.toy_network`: the coursework's toy network (``toy``, ``train_toy``);
- :mod:`~fastnn.tasks.ocr`: ``fastnn ocr``, ``ocr-eval`` and ``ocr-train``;
- :mod:`~fastnn.tasks.common`: the output folder, the report and the plots, written atomically;
- :mod:`~fastnn.tasks.registry`: the table the command line is built from, and how to add a task.

The ``sweep`` command, which runs these tasks over a grid on Dask, sits above them in a package of its own
(no task imports it); the training recipes they use are :mod:`fastnn.recipes`'s.
"""

from .classifier import RECIPES, classify, confusion, confusion_matrix, first_layer_weights, lr_study, train_classifier
from .demo import demo
from .mnist import mnist_binary, mnist_multiclass
from .reconstruction import autoencoder, psnr
from .registry import TASKS, load_tasks, register
from .toy_network import make_toy_data, toy, train_toy

__all__ = [
    "RECIPES",
    "train_classifier",
    "classify",
    "first_layer_weights",
    "lr_study",
    "confusion_matrix",
    "confusion",
    "autoencoder",
    "psnr",
    "mnist_binary",
    "mnist_multiclass",
    "demo",
    "toy",
    "train_toy",
    "make_toy_data",
    "TASKS",
    "load_tasks",
    "register",
]
