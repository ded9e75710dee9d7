"""Data sets for fastnn: NIST36 ``.mat`` files, MNIST idx files and a generated set.

Three sources, all ending in the NIST36 layout used by the coursework, one
module each:

* ``nist36``: ``load_nist36`` / ``load_hw36`` / ``save_nist36`` read and write
  the ``<split>_data`` / ``<split>_labels`` ``.mat`` layout; ``HW36_SPLITS``
  names the hw36 splits and ``find_data_dir`` finds the real-data folder.
* ``mnist``: ``read_idx`` / ``load_mnist`` read the MNIST idx files (raw or
  gzipped) and ``mnist_binary`` / ``mnist_multiclass`` / ``mnist_to_nist36``
  shape them for the tasks.
* ``generated``: ``generate_nist36`` / ``generated_splits`` build a synthetic
  set from the fonts matplotlib ships, for when no real data is at hand.

Below them, ``labels`` holds the class list ``CLASSES`` (its one definition),
``onehot`` and ``labels_to_chars``.
Above them, ``dataset.load_dataset`` picks the real hw36 set when
``find_data_dir`` finds one and the generated set otherwise.  Every public
name is available here, as ``fastnn.data.<name>``.

The NIST36 layout
-----------------
``X`` is float64 in [0, 1] with shape (N, 1024): each row is a 32x32 image of
dark ink (0) on white (1), stored transposed, so ``row.reshape(32, 32).T`` is
upright and an upright crop is stored with ``crop.T.reshape(-1)``. ``Y`` is
one-hot with shape (N, 36); columns 0-25 are A-Z and columns 26-35 are 0-9
(see ``CLASSES``).

Nothing here unpickles: ``.mat`` files go through ``scipy.io.loadmat`` and idx
files are parsed by hand.
"""

from .augmentation import augment
from .dataset import GeneratedDataWarning, load_dataset
from .generated import GENERATED_SIZES, generate_nist36, generated_splits
from .labels import CLASSES, N_CLASSES, labels_to_chars, onehot
from .mnist import load_mnist, mnist_binary, mnist_multiclass, mnist_to_nist36, read_idx
from .nist36 import (
    DATA_ENV_VAR,
    HW36_SPLITS,
    IMAGE_SIDE,
    N_PIXELS,
    PIXEL_TOLERANCE,
    find_data_dir,
    load_hw36,
    load_nist36,
    save_nist36,
)

__all__ = [
    "CLASSES",
    "augment",
    "DATA_ENV_VAR",
    "GENERATED_SIZES",
    "HW36_SPLITS",
    "IMAGE_SIDE",
    "N_CLASSES",
    "N_PIXELS",
    "PIXEL_TOLERANCE",
    "find_data_dir",
    "generate_nist36",
    "generated_splits",
    "labels_to_chars",
    "GeneratedDataWarning",
    "load_dataset",
    "load_hw36",
    "load_mnist",
    "load_nist36",
    "mnist_binary",
    "mnist_multiclass",
    "mnist_to_nist36",
    "onehot",
    "read_idx",
    "save_nist36",
]
