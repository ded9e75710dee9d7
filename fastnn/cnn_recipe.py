"""The CNN recipes' old home: they live in :mod:`fastnn.recipes` with the MLP's (``fastnn.cnn_recipe.CNN_RECIPES``
and ``train_cnn`` still work)."""

from .recipes import CNN_RECIPES, cnn_layers, train_cnn

__all__ = ["CNN_RECIPES", "cnn_layers", "train_cnn"]
