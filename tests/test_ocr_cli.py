"""`fastnn ocr`, `ocr-eval` and `ocr-train` as users of Tesseract and kraken expect (issue 13): many images and
folders in one call, arguments checked before any slow work, text / JSON / TSV, --out-dir, --lexicon, --boxes from
the same segmentation, and the model rebuilt with its progress shown.

Nothing here trains the real recipe: the pages are generated, the model is an untrained MLP saved to .npz and
given with --model, and ocr-train runs on a few hundred generated rows.
"""

import json

import numpy as np
import pytest
from PIL import Image

from _cli import one_error_line
import fastnn.data.augmentation
import fastnn.ocr.model
import fastnn.ocr.read
import fastnn.ocr.segment
import fastnn.train
from fastnn import cli, ocr
from fastnn.data import CLASSES, generate_nist36, load_hw36, save_nist36
from fastnn.models import MLP
from fastnn.ocr.build import SCORE_PAGES_SEED
from fastnn.ocr.synth import page_crops
from fastnn.tasks import ocr as ocr_task

TSV_HEADER = "level\tpage_num\tline_num\tword_num\tchar_num\tleft\ttop\twidth\theight\tconf\ttext"


def _bars(widths=(5, 3), height=200):
    """A white page with black bars, words of ``widths`` bars, tall and thin (so width and height differ)."""
    img = np.full((height, 180 + 50 * sum(widths) + 100 * len(widths)), 255, np.uint8)
    x = 60
    for n in widths:
        for _ in range(n):
            img[60:130, x:x + 15] = 0
            x += 40
        x += 100
    return img


@pytest.fixture
def folder(tmp_path):
    """a.png (two words), B.PNG (one word, upper-case suffix), c.jpeg, plus files a folder must not contribute."""
    d = tmp_path / "pages"
    d.mkdir()
    Image.fromarray(_bars((5, 3))).save(d / "a.png")
    Image.fromarray(_bars((4,))).save(d / "B.PNG")
    Image.fromarray(_bars((2, 2))).convert("RGB").save(d / "c.jpeg", quality=95)
    (d / "notes.txt").write_text("not a page\n")
    (d / ".hidden.png").write_text("an editor's backup, not an image\n")
    (d / "sub").mkdir()
    Image.fromarray(_bars((1,))).save(d / "sub" / "deep.png")
    return d



# ------------------------------------------------------------------------------------------------ many images


def test_the_command_line_offers_the_formats_fastnn_ocr_formats_writes():
    """tasks.ocr lists the --format names without importing the OCR (the parser stays light): the same names."""
    from fastnn.ocr.formats import FORMATS

    assert ocr_task.FORMAT_NAMES == tuple(FORMATS)


def test_folders_expand_to_their_image_files_sorted_by_name(folder, tmp_path, model_path, capsys):
    listed = ocr_task.image_paths([folder, folder / "sub" / "deep.png"])
    assert [p.name for p in listed] == ["B.PNG", "a.png", "c.jpeg", "deep.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    with pytest.raises(ValueError, match="holds no image files"):
        ocr_task.image_paths([empty])
    assert cli.main(["ocr", str(folder), "--model", model_path, "--no-progress"]) == 0
    out = capsys.readouterr().out
    headers = [line for line in out.splitlines() if line.startswith("== ")]
    assert headers == [f"== {folder / name}" for name in ("B.PNG", "a.png", "c.jpeg")]


def test_a_bar_across_the_images_on_stderr(folder, model_path, capsys):
    assert cli.main(["ocr", str(folder), "--model", model_path, "--progress"]) == 0
    err = capsys.readouterr().err
    assert "image 1/3" in err and "image 3/3" in err, err  # off a terminal: plain lines, the first and the last
    for flag in (["--no-progress"], []):  # neither flag: bars on a terminal only
        assert cli.main(["ocr", str(folder), "--model", model_path, *flag]) == 0
        assert "image" not in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # imageio's legacy plugins, looked at in passing
@pytest.mark.parametrize("case", ["missing", "device", "empty folder", "text named .jpg", "empty file",
                                  "one of several", "a model file"])
def test_bad_paths_are_reported_before_the_model_loads(case, folder, tmp_path, no_model, capsys):
    good = str(folder / "a.png")
    if case == "missing":
        args, word = [str(tmp_path / "typo.jpg")], "no such file"
    elif case == "device":
        args, word = ["/dev/null", good], "not a regular file"
    elif case == "empty folder":
        (tmp_path / "e").mkdir()
        args, word = [good, str(tmp_path / "e")], "holds no image files"
    elif case == "text named .jpg":
        (tmp_path / "t.jpg").write_text("hello\n")
        args, word = [str(tmp_path / "t.jpg")], "holds text, not image data"
    elif case == "empty file":
        (tmp_path / "z.png").write_bytes(b"")
        args, word = [str(tmp_path / "z.png")], "empty"
    elif case == "one of several":
        args, word = [good, str(tmp_path / "gone.png"), str(folder / "B.PNG")], "gone.png"
    else:
        args, word = [str(MLP([1024, 4, 36], ["relu", "softmax"]).save(tmp_path / "m.npz"))], "not an image file"
    assert cli.main(["ocr", *args]) == 2
    captured = capsys.readouterr()
    one_error_line(captured.err, word)
    assert captured.out == ""


def test_every_bad_image_is_named_in_the_one_line(tmp_path, folder, no_model, capsys):
    assert cli.main(["ocr", str(tmp_path / "x.png"), str(folder / "a.png"), str(tmp_path / "y.png")]) == 2
    one_error_line(capsys.readouterr().err, "2 of 3 images", "x.png", "y.png")


@pytest.mark.parametrize("extra, word", [
    (["--json", "--format", "tsv"], "--json"),
    (["--out-dir", "FILE"], "--out-dir"),
    (["--boxes", "NOFOLDER/b.png"], "--boxes"),
    (["--lexicon", "MISSING"], "--lexicon"),
])
def test_bad_options_are_refused_before_the_model_loads(extra, word, folder, tmp_path, no_model, capsys):
    (tmp_path / "FILE").write_text("x")
    extra = [str(tmp_path / e) if e in ("FILE", "NOFOLDER/b.png", "MISSING") else e for e in extra]
    assert cli.main(["ocr", str(folder / "a.png"), *extra]) == 2
    one_error_line(capsys.readouterr().err, word)


def test_two_images_writing_the_same_output_are_refused_first(tmp_path, folder, no_model, capsys):
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(_bars()).save(other / "a.png")
    out = tmp_path / "out"
    assert cli.main(["ocr", str(folder / "a.png"), str(other / "a.png"), "--out-dir", str(out)]) == 2
    one_error_line(capsys.readouterr().err, "a.txt")
    assert not out.exists() or not any(out.iterdir())


def test_a_batch_reads_every_image_it_can_and_exits_2(folder, tmp_path, model_path, capsys):
    """An image whose header is fine but whose pixels are cut off: one line on stderr, the others read."""
    data = (folder / "a.png").read_bytes()
    broken = tmp_path / "broken.png"
    broken.write_bytes(data[: len(data) // 2])
    args = [str(folder / "a.png"), str(broken), str(folder / "B.PNG"), "--model", model_path, "--no-progress"]
    assert cli.main(["ocr", *args]) == 2
    captured = capsys.readouterr()
    assert f"== {folder / 'a.png'}" in captured.out and f"== {folder / 'B.PNG'}" in captured.out
    assert "broken" not in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 2 and "broken.png" in err[0] and "truncated" in err[0] and "1 of 3" in err[1], err
    out = tmp_path / "out"
    assert cli.main(["ocr", *args, "--out-dir", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["B.txt", "a.txt"]


# ------------------------------------------------------------------------------------------------ formats


def _expected(path, model_path):
    image = ocr.load_image(path)
    return ocr.read_text(image, MLP.load(model_path)), image.shape


def _ltwh(box):
    y1, x1, y2, x2 = (int(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def _union(boxes):
    boxes = np.asarray(boxes)
    return _ltwh([boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()])


@pytest.mark.parametrize("flag", [["--format", "json"], ["--json"]])
def test_json_nests_lines_words_and_characters_with_their_boxes(flag, folder, model_path, capsys):
    path = folder / "a.png"
    res, shape = _expected(path, model_path)
    assert cli.main(["ocr", str(path), "--model", model_path, *flag]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) < 160 and len(out.splitlines()) > len(res.chars)  # readable
    [page] = json.loads(out)
    assert (page["image"], page["height"], page["width"], page["text"]) == (str(path), *shape[:2], res.text)
    assert [[len(w["characters"]) for w in line["words"]] for line in page["lines"]] == \
        [[len(w) for w in line] for line in res.lines]
    for line, line_idx in zip(page["lines"], res.lines):
        members = [i for w in line_idx for i in w]
        assert [line[k] for k in ("left", "top", "width", "height")] == _union(res.boxes[members])
        assert line["text"] == " ".join(w["text"] for w in line["words"])
        assert line["confidence"] == pytest.approx(np.prod(res.confidences[members]), abs=1e-4)
        for word, idx in zip(line["words"], line_idx):
            assert word["text"] == "".join(res.chars[i] for i in idx)
            assert [word[k] for k in ("left", "top", "width", "height")] == _union(res.boxes[idx])
            assert word["confidence"] == pytest.approx(np.prod(res.confidences[idx]), abs=1e-4)  # the product
            for char, i in zip(word["characters"], idx):
                assert char["text"] == res.chars[i]
                assert [char[k] for k in ("left", "top", "width", "height")] == _ltwh(res.boxes[i])
                assert char["confidence"] == pytest.approx(res.confidences[i], abs=1e-4)


def test_tsv_has_tesseracts_columns_and_a_row_per_word_and_character(folder, model_path, capsys):
    path = folder / "a.png"
    res, shape = _expected(path, model_path)
    assert cli.main(["ocr", str(path), "--model", model_path, "--format", "tsv"]) == 0
    lines = capsys.readouterr().out.rstrip("\n").split("\n")
    assert lines[0] == TSV_HEADER
    rows = [dict(zip(TSV_HEADER.split("\t"), line.split("\t"))) for line in lines[1:]]
    assert all(len(r) == 11 for r in rows)
    assert [r["level"] for r in rows].count("6") == len(res.chars)
    assert [r["level"] for r in rows].count("5") == sum(len(line) for line in res.lines)
    assert [r["level"] for r in rows].count("4") == len(res.lines)
    assert (rows[0]["level"], rows[0]["width"], rows[0]["height"], rows[0]["conf"]) == \
        ("1", str(shape[1]), str(shape[0]), "-1")
    chars = [r for r in rows if r["level"] == "6"]
    order = [i for line in res.lines for word in line for i in word]
    for r, i in zip(chars, order):
        assert r["text"] == res.chars[i]
        assert [int(r[k]) for k in ("left", "top", "width", "height")] == _ltwh(res.boxes[i])
        assert float(r["conf"]) == pytest.approx(100 * res.confidences[i], abs=0.01)
    words = [r for r in rows if r["level"] == "5"]
    assert " ".join(r["text"] for r in words) == res.text.replace("\n", " ")
    for r in words:
        members = [c for c in chars if (c["line_num"], c["word_num"]) == (r["line_num"], r["word_num"])]
        assert "".join(c["text"] for c in members) == r["text"]
        assert [c["char_num"] for c in members] == [str(k) for k in range(1, len(members) + 1)]


def test_out_dir_writes_one_file_per_image_in_each_format(folder, tmp_path, model_path, capsys):
    images = [folder / "a.png", folder / "B.PNG"]
    for fmt, suffix in (("text", ".txt"), ("json", ".json"), ("tsv", ".tsv")):
        out = tmp_path / fmt
        assert cli.main(["ocr", *map(str, images), "--model", model_path, "--format", fmt, "--out-dir", str(out),
                         "--no-progress"]) == 0
        captured = capsys.readouterr()
        assert captured.out == "" and str(out) in captured.err
        assert sorted(p.name for p in out.iterdir()) == sorted(p.stem + suffix for p in images)
        for number, image in enumerate(images, 1):
            content = (out / (image.stem + suffix)).read_text()
            res, _ = _expected(image, model_path)
            if fmt == "text":
                assert content == res.text + "\n"
            elif fmt == "json":
                assert json.loads(content)["text"] == res.text  # one object per file, not a list
            else:
                lines = content.splitlines()
                assert lines[0] == TSV_HEADER and lines[1].split("\t")[1] == str(number)


# ------------------------------------------------------------------------------------------------ words, boxes


class _Reader:
    """A classifier that reads every page as ``text``, one character uncertain (as tests/test_ocr_lexicon.py)."""

    def __init__(self, text, weak):
        self.text, self.weak = text, weak

    def predict_proba(self, X):
        P = np.full((len(X), 36), 0.01 / 35)
        for i, c in enumerate(self.text[: len(X)]):
            P[i, CLASSES.index(c)] = 0.99
        i, wrong = self.weak
        P[i] = 0.1 / 34
        P[i, CLASSES.index(wrong)] = 0.6
        P[i, CLASSES.index(self.text[i])] = 0.3
        return P


def test_lexicon_replaces_a_word_read_wrongly(tmp_path, monkeypatch, capsys):
    page = tmp_path / "lemon.png"
    Image.fromarray(_bars((5,))).save(page)
    monkeypatch.setattr(fastnn.ocr.model, "load_ocr_model", lambda *a, **k: _Reader("LEMON", (4, "M")))
    words = tmp_path / "words.txt"
    words.write_text("melon\nlemon\n")
    assert cli.main(["ocr", str(page)]) == 0
    assert capsys.readouterr().out == "LEMOM\n"
    assert cli.main(["ocr", str(page), "--lexicon", str(words)]) == 0
    assert capsys.readouterr().out == "LEMON\n"
    expected = tmp_path / "expected.txt"
    expected.write_text("LEMON\n")
    assert cli.main(["ocr-eval", str(page), str(expected)]) == 0
    assert "cer: 0.2000" in capsys.readouterr().out
    assert cli.main(["ocr-eval", str(page), str(expected), "--lexicon", str(words)]) == 0
    assert "cer: 0.0000" in capsys.readouterr().out
    (tmp_path / "binary.txt").write_bytes(b"\0\1\2")
    assert cli.main(["ocr", str(page), "--lexicon", str(tmp_path / "binary.txt")]) == 2
    one_error_line(capsys.readouterr().err, "binary.txt", "word list")


def test_boxes_are_drawn_from_the_segmentation_the_text_came_from(folder, tmp_path, model_path, monkeypatch,
                                                                 capsys):
    calls = []
    real = fastnn.ocr.segment.find_letters

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    for module in (fastnn.ocr.segment, fastnn.ocr.read, ocr):
        monkeypatch.setattr(module, "find_letters", counted)
    picture = tmp_path / "boxes.png"
    assert cli.main(["ocr", str(folder / "a.png"), "--model", model_path, "--boxes", str(picture)]) == 0
    assert len(calls) == 1
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out.strip() == _expected(folder / "a.png", model_path)[0].text


def test_draw_boxes_writes_atomically(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    picture = tmp_path / "boxes.png"
    picture.write_bytes(b"the previous picture")

    def half_then_fail(self, fh, **kwargs):
        fh.write(b"\x89PNG half a picture")
        raise RuntimeError("killed while saving")

    monkeypatch.setattr(Figure, "savefig", half_then_fail)
    with pytest.raises(RuntimeError):
        ocr.draw_boxes(np.zeros((50, 60)), np.array([[5, 5, 20, 15]]), [[[0]]], picture)
    assert picture.read_bytes() == b"the previous picture"
    assert [p.name for p in tmp_path.iterdir()] == ["boxes.png"]


# ------------------------------------------------------------------------------------------------ ocr-eval


@pytest.mark.parametrize("which", ["image", "expected", "expected is a folder"])
def test_ocr_eval_says_which_file_is_missing_before_the_model_loads(which, folder, tmp_path, no_model, capsys):
    expected = tmp_path / "expected.txt"
    expected.write_text("HELLO\n")
    image = str(folder / "a.png")
    if which == "image":
        image, words = str(tmp_path / "nopage.jpg"), ("image", "nopage.jpg", "no such file")
    elif which == "expected":
        expected, words = tmp_path / "nothing.txt", ("expected text", "nothing.txt", "no such file")
    else:
        expected, words = folder, ("expected text", "is a directory")
    assert cli.main(["ocr-eval", image, str(expected)]) == 2
    one_error_line(capsys.readouterr().err, *words)


# ------------------------------------------------------------------------------------------------ ocr-train


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A data folder of generated hw36-layout splits (3 rows a class each), no MNIST: trains in about a second."""
    root = tmp_path_factory.mktemp("data")
    (root / "hw36").mkdir()
    for seed, split in enumerate(("train", "valid", "test", "extra")):
        X, Y = generate_nist36(3, seed=seed, split="test" if split == "test" else "train")
        save_nist36(root / "hw36" / f"hw36_{split}.mat", split, X, Y)
    return root


def test_ocr_train_help(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["ocr-train", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--data", "--out PATH", "--seed", "--progress", "--no-progress"):
        assert option in text, option


def test_ocr_train_saves_where_ocr_looks_and_shows_every_step(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FASTNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FASTNN_OCR_MODEL", raising=False)
    assert cli.main(["ocr-train", "--data", str(tiny_data), "--progress"]) == 0
    captured = capsys.readouterr()
    headline = dict(line.split(": ", 1) for line in captured.out.splitlines())
    assert headline["model"] == str(fastnn.ocr.model.default_model_path())
    assert {"test_accuracy", "test_accuracy_mlp", "test_accuracy_cnn", "test_accuracy_recropped",
            "test_accuracy_as_stored", "mlp_train_accuracy", "cnn_train_accuracy"} <= set(headline)
    assert 0 <= float(headline["test_accuracy"]) <= 1
    epochs = fastnn.ocr.model.EPOCHS
    for step in ("loading hw36", "cutting characters from pages", "training the MLP", f"epoch {epochs}/{epochs}",
                 "training the CNN", "evaluating"):
        assert step in captured.err, (step, captured.err)
    model = fastnn.ocr.model.load_ocr_model()  # the cached model `fastnn ocr` would use
    assert [type(m).__name__ for m in model.members] == ["MLP", "CNN"]
    X, Y = load_hw36(tiny_data, "test")
    crops, _ = page_crops(X, seed=SCORE_PAGES_SEED, per_page=fastnn.ocr.model.PER_PAGE)
    assert model.accuracy(crops, Y) == pytest.approx(float(headline["test_accuracy"]), abs=5e-5)
    alone = fastnn.ocr.OCRModel(model.members[1:])
    assert alone.accuracy(crops, Y) == pytest.approx(float(headline["test_accuracy_cnn"]), abs=5e-5)
    assert model.accuracy(ocr.recrop_rows(X), Y) == pytest.approx(float(headline["test_accuracy_recropped"]), abs=5e-5)
    out = tmp_path / "elsewhere" / "mine.npz"
    assert cli.main(["ocr-train", "--data", str(tiny_data), "--out", str(out), "--no-progress", "--seed", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == f"output: {out}" and f"model: {out}\n" in captured.out
    other = fastnn.ocr.OCRModel.load(out)
    for mine, theirs in zip(other.members, model.members):  # another seed, other networks
        assert not np.array_equal(mine.theta, theirs.theta)


@pytest.mark.parametrize("case, word", [("out is a folder", "is a folder"), ("out under a file", "is a file, not"),
                                        ("not a .npz", "a model file is a .npz"), ("no data", "--data")])
def test_ocr_train_refuses_bad_arguments_before_training(case, word, tmp_path, tiny_data, monkeypatch, capsys):
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder.npz").mkdir()
    if case != "no data":  # (the real training_set's first act is to refuse the missing data)
        monkeypatch.setattr(fastnn.ocr.model, "training_set", lambda *a, **k: pytest.fail("training started"))
    args = {"out is a folder": ["--data", str(tiny_data), "--out", str(tmp_path / "folder.npz")],
            "out under a file": ["--data", str(tiny_data), "--out", str(tmp_path / "file" / "m.npz")],
            "not a .npz": ["--data", str(tiny_data), "--out", str(tmp_path / "m.pkl")],
            "no data": ["--out", str(tmp_path / "m.npz")]}[case]
    assert cli.main(["ocr-train", *args]) == 2
    one_error_line(capsys.readouterr().err, word)
    assert not (tmp_path / "m.npz").exists()


def test_progress_changes_nothing_that_is_trained(tiny_data, monkeypatch):
    """The progress hooks (the pages' bar, the reports within each epoch) are display only, and the MLP's
    epoch bar moves within each epoch: through the distorted copies, then through the training's batches."""
    from fastnn.ocr.model import train_ocr_model, training_set

    updates = []

    class Recorder(fastnn.train.ProgressBar):
        def update(self, done, info=""):
            updates.append((self.label, done, info))

    monkeypatch.setattr(fastnn.ocr.model, "ProgressBar", Recorder)
    X, _ = training_set(tiny_data, progress=True)
    raw = np.vstack([load_hw36(tiny_data, split)[0] for split in ("train", "valid", "extra")])
    assert np.array_equal(X, page_crops(raw.astype(np.float32), per_page=fastnn.ocr.model.PER_PAGE)[0])
    pages = [done for label, done, _ in updates if label.startswith("cutting characters from pages")]
    assert pages == sorted(pages) and 0 < pages[0] < len(X) and pages[-1] == len(X), pages
    updates.clear()
    monkeypatch.setattr(fastnn.data.augmentation, "REPORT_ROWS", 50)  # so that 324 rows report within
    quiet, _ = train_ocr_model(tiny_data, epochs=2, copies=3, progress=False, members=("mlp",))
    assert updates == []
    shown, _ = train_ocr_model(tiny_data, epochs=2, copies=3, progress=True, members=("mlp",))
    assert np.array_equal(quiet.members[0].theta, shown.members[0].theta)
    epochs = [(done, info) for label, done, info in updates if label == "epoch"]
    assert [done for done, _ in epochs] == sorted(done for done, _ in epochs) and epochs[-1][0] == 2
    assert any(0 < done < 0.75 and info.startswith("distorting") for done, info in epochs), epochs
    assert any(0.75 < done < 1 and info.startswith("training loss") for done, info in epochs), epochs
