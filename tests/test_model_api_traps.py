"""Traps a new user hit (issue 21): one activation name given as a string, a model loaded by the path it was
saved to without the '.npz' the save appended, and one kind of model file given to another kind's loader."""

import re

import numpy as np
import pytest

from fastnn.cnn import CNN
from fastnn.layers import Dense, Flatten
from fastnn.models import MLP, ModelFileError
from fastnn.ocr import OCRModel, load_ocr_model


def _mlp():
    return MLP([1024, 36], ["softmax"], seed=0)  # (an OCR model's member too)


def _cnn():
    return CNN((4, 4, 1), [Flatten(), Dense(16, 3, "softmax")], seed=0)


# ------------------------------------------------------------- activations given as one string

@pytest.mark.parametrize("sizes, name, example", [
    ([1024, 64, 36], "relu", "['relu', 'softmax']"),
    ([4, 3], "softmax", "['softmax']"),
    ([4, 5, 6, 3], "softmax", "['relu', 'relu', 'softmax']"),  # (softmax is never a hidden layer's)
    ([4, 5, 3], "tanhh", "['relu', 'softmax']"),
])
def test_a_string_of_activations_is_refused_as_a_string(sizes, name, example):
    n = len(sizes) - 1
    with pytest.raises(ValueError) as info:
        MLP(sizes, name)
    msg = str(info.value)
    assert f"one name per layer (here {n}: e.g. {example})" in msg, msg
    assert f"got the string {name!r}" in msg, msg


def test_lists_and_tuples_of_activations_are_as_before():
    assert MLP([4, 5, 3], ("relu", "softmax")).activations == ["relu", "softmax"]
    assert MLP([4, 3], ["softmax"]).loss == "cross_entropy"
    with pytest.raises(ValueError, match=r"activations: expected 2 \(one per layer\), got 1"):
        MLP([4, 5, 3], ["softmax"])
    with pytest.raises(ValueError, match="sizes: expected at least two"):
        MLP([4], "relu")  # too few widths: that is what is wrong


# ------------------------------------------------------------- load(path) reads what save(path) wrote

@pytest.mark.parametrize("make, loader", [(_mlp, MLP.load), (_cnn, CNN.load),
                                          (lambda: OCRModel([_mlp()]), OCRModel.load)])
@pytest.mark.parametrize("given, written", [("m", "m.npz"), ("m.model", "m.model.npz")])
def test_load_reads_the_file_save_wrote(tmp_path, make, loader, given, written):
    model = make()
    assert model.save(tmp_path / given) == tmp_path / written
    assert not (tmp_path / given).exists()
    for path in (tmp_path / given, str(tmp_path / given)):
        back = loader(path)
        assert type(back) is type(model)
        for a, b in zip(getattr(back, "members", [back]), getattr(model, "members", [model]), strict=True):
            np.testing.assert_array_equal(a.theta, b.theta)  # (the values saved, read back)


def test_the_ocr_model_argument_reads_the_file_save_wrote(tmp_path):
    OCRModel([_mlp()]).save(tmp_path / "ocr")
    assert isinstance(load_ocr_model(str(tmp_path / "ocr")), OCRModel)


def test_an_existing_path_is_read_as_it_is(tmp_path):
    _mlp().save(tmp_path / "m")  # m.npz, a good model
    (tmp_path / "m").write_text("not a model")
    with pytest.raises(ModelFileError) as info:
        MLP.load(tmp_path / "m")
    assert str(info.value).startswith(f"{tmp_path / 'm'}: not a fastnn model file (it is a text file")


def test_messages_name_the_file_read(tmp_path):
    (tmp_path / "m.npz").write_bytes(b"")
    for loader in (MLP.load, CNN.load, OCRModel.load):
        with pytest.raises(ModelFileError, match=re.escape(f"{tmp_path / 'm.npz'}: not a fastnn model file")):
            loader(tmp_path / "m")


def test_a_missing_file_names_both_paths_tried(tmp_path):
    for loader in (MLP.load, CNN.load, OCRModel.load):
        with pytest.raises(FileNotFoundError, match=r"nor m\.npz") as info:
            loader(tmp_path / "m")
        assert info.value.filename == str(tmp_path / "m")
    with pytest.raises(FileNotFoundError) as info:
        MLP.load(tmp_path / "m.npz")  # nothing else to try
    assert info.value.filename == str(tmp_path / "m.npz")


# ------------------------------------------------------------- one kind of model file given to another's loader

@pytest.mark.parametrize("make, loader, what", [
    (_cnn, MLP.load, "a CNN model file (fastnn.CNN/1), which MLP.load does not read: load it with "
                     "fastnn.models.CNN.load"),
    (_mlp, CNN.load, "an MLP model file (fastnn.MLP/1), which CNN.load does not read: load it with "
                     "fastnn.models.MLP.load"),
    (lambda: OCRModel([_mlp()]), MLP.load, "an OCR model file (fastnn.OCRModel/1), which MLP.load does not "
                                           "read: load it with fastnn.ocr.OCRModel.load"),
    (lambda: OCRModel([_mlp()]), CNN.load, "an OCR model file (fastnn.OCRModel/1), which CNN.load does not "
                                           "read: load it with fastnn.ocr.OCRModel.load"),
])
def test_another_kind_of_model_file_says_what_it_is_and_what_loads_it(tmp_path, make, loader, what):
    path = make().save(tmp_path / "model.npz")
    with pytest.raises(ModelFileError) as info:
        loader(path)
    assert str(info.value) == f"{path}: {what}"


# ------------------------------------------------------------- a PyTorch-style learning rate

def _letters():
    """720 generated 32x32 letters and digits (20 of each of the 36 classes), as one-hot targets."""
    from fastnn import data

    return data.generate_nist36(20, seed=0)


def test_a_mean_loss_learning_rate_that_leaves_a_classifier_at_chance_is_named():
    """lr=0.1 is PyTorch's usual SGD rate for its mean loss; on fastnn's summed loss of a batch of 32 it
    saturates the sigmoid units and the classifier predicts one class: the trainer says so, and what to try."""
    from fastnn.train import ChanceLevelWarning, Trainer

    X, Y = _letters()
    model = MLP([1024, 64, 36], ["sigmoid", "softmax"], seed=0)
    with pytest.warns(ChanceLevelWarning) as record:
        hist = Trainer(model, lr=0.1, batch_size=32, progress=False).fit(X, Y, epochs=3)
    assert hist.train_acc[-1] <= 1 / 36 + 0.01
    assert np.unique(model.predict(X)).size == 1
    msg = str(record[0].message)
    assert "no better than always predicting the most frequent class" in msg, msg
    assert "predicts one class for 100% of the samples" in msg, msg
    assert "summed over a batch" in msg and "try lr=0.003125." in msg, msg
    assert record[0].filename == __file__  # (pointing at the caller's fit)


def test_a_slow_start_or_a_learning_classifier_gets_no_chance_warning(recwarn):
    """The rate divided by the batch size learns; its first epochs are near chance too, but the predictions
    are spread over the classes: no warning."""
    from fastnn.train import ChanceLevelWarning, Trainer

    X, Y = _letters()
    trainer = Trainer(MLP([1024, 64, 36], ["sigmoid", "softmax"], seed=0), lr=0.1 / 32, batch_size=32,
                      progress=False)
    trainer.fit(X, Y, epochs=1)
    hist = trainer.fit(X, Y, epochs=20)
    assert hist.train_acc[-1] > 0.5
    assert not [w for w in recwarn if issubclass(w.category, ChanceLevelWarning)]
