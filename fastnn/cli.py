"""The fastnn command line: `fastnn TASK [options]`; `fastnn TASK --help` describes each task.

Every task ends by printing its headline figures as `name: value` lines, so scripts can read them.
"""

from __future__ import annotations

import argparse
import math
import os
import sys


#: The largest expected-text file `ocr-eval` reads (a page's text is a few kilobytes).
MAX_EXPECTED_BYTES = 1 << 20


def _positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (a learning rate: nan, inf and 0 are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _read_expected(path: str) -> str:
    """The expected text of `ocr-eval`: UTF-8, at most MAX_EXPECTED_BYTES (so /dev/zero is refused)."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_EXPECTED_BYTES + 1)
    if len(data) > MAX_EXPECTED_BYTES:
        raise ValueError(f"{path}: over {MAX_EXPECTED_BYTES // 1024} KB: not the expected text of a page")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file") from None


def _print_headline(headline: dict) -> None:
    """The task's headline figures as `name: value` lines (floats to 4 decimals, integers as integers)."""
    for key, value in headline.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


def _progress(args):
    return True if args.progress else (False if args.no_progress else None)


def _cmd_toy(args) -> int:
    from .tasks.toy_network import train_toy

    result = train_toy(seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       hidden=args.hidden)
    _print_headline({"loss": float(result["loss"]), "accuracy": float(result["accuracy"])})
    return 0


def _cmd_task(args) -> int:
    from . import tasks
    from .data import find_data_dir

    common = dict(out=args.out, progress=_progress(args))
    if args.task == "classify":
        res = tasks.classify(args.data, recipe=args.recipe, seed=args.seed, epochs=args.epochs, lr=args.lr, **common)
    elif args.task == "weights":
        res = tasks.first_layer_weights(args.data, seed=args.seed, **common)
    elif args.task == "lr-study":
        res = tasks.lr_study(args.data, seed=args.seed, lr=args.lr, epochs=args.epochs, **common)
    elif args.task == "confusion":
        model = None
        if args.model:
            from .models import MLP

            model = MLP.load(args.model)
        res = tasks.confusion(args.data, seed=args.seed, model=model, **common)
        if res["pairs"]:  # one line, unlike the headline's `name: value` lines
            print("most confused pairs (test rows): " + ", ".join(f"{a}<->{b} {n}" for a, b, n in res["pairs"]))
    elif args.task == "autoencoder":
        res = tasks.autoencoder(args.data, seed=args.seed, epochs=args.epochs, lr=args.lr, **common)
    elif args.task == "mnist-binary":
        res = tasks.mnist_binary(args.data, seed=args.seed, epochs=args.epochs, lr=args.lr, **common)
    elif args.task == "mnist-multiclass":
        res = tasks.mnist_multiclass(args.data, seed=args.seed, epochs=args.epochs, lr=args.lr, **common)
    else:  # demo
        res = tasks.demo(args.data, seed=args.seed, **common)
    if not args.task.startswith("mnist"):  # say which data the 36-class tasks trained on (a failure stays one line)
        data_dir = find_data_dir(args.data)
        print("data: generated (synthetic fonts), not handwriting" if data_dir is None else f"data: hw36 at {data_dir}",
              file=sys.stderr)
    print(f"output: {os.path.abspath(args.out)}", file=sys.stderr)
    _print_headline(res["headline"])
    return 0


def _cmd_bench_epoch(args) -> int:
    from .tasks.epoch_benchmark import bench_epoch

    res = bench_epoch(batch_size=args.batch_size, dtype=args.dtype, hidden=args.hidden, epochs=args.epochs,
                      torch=not args.no_torch)
    if "torch_skipped" in res:
        print(f"torch: skipped: {res['torch_skipped']}", file=sys.stderr)
    _print_headline({k: v for k, v in res.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return 0


def _cmd_ocr(args) -> int:
    import json

    from . import ocr
    from .ocr_model import load_ocr_model

    model = load_ocr_model(args.model, data=args.data, progress=_progress(args))
    results = []
    for path in args.images:
        res = ocr.read_text(ocr.load_image(path), model, keep_binary=bool(args.boxes))
        if args.boxes:
            out = args.boxes if len(args.images) == 1 else _numbered(args.boxes, path)
            ocr.draw_boxes(res.binary, res.boxes, res.lines, out)
        results.append((path, res))
    if args.json:
        print(json.dumps([{"image": str(p), "text": r.text, "lines": r.lines,
                           "characters": [{"char": c, "box": [int(v) for v in b], "confidence": round(float(q), 4)}
                                          for c, b, q in zip(r.chars, r.boxes, r.confidences)]}
                          for p, r in results], indent=2))
    else:
        for i, (path, res) in enumerate(results):
            if len(results) > 1:
                print(f"{'' if i == 0 else chr(10)}== {path}")
            print(res.text)
    return 0


def _numbered(template, image_path):
    from pathlib import Path

    t = Path(template)
    return str(t.with_name(f"{t.stem}-{Path(image_path).stem}{t.suffix or '.png'}"))


def _cmd_ocr_eval(args) -> int:
    from . import ocr
    from .ocr_model import load_ocr_model

    expected = _read_expected(args.expected)  # before the model: a wrong file fails at once
    model = load_ocr_model(args.model, data=args.data, progress=_progress(args))
    res = ocr.read_text(ocr.load_image(args.image), model)
    print(res.text)
    _print_headline({"cer": ocr.cer(res.text, expected), "cer_nospace": ocr.cer(res.text, expected, True)})
    return 0


_TASKS = {
    # name: (help, defaults: {epochs, lr, seed})
    "classify": ("train and evaluate the 36-class classifier (1024-64-36 by default); curves and report",
                 dict(epochs=None, lr=None, seed=42)),
    "weights": ("the first-layer weights as an 8x8 grid of images, at initialisation and after training",
                dict(epochs=None, lr=None, seed=42)),
    "lr-study": ("the classifier at the tuned learning rate, 10x and 0.1x: six curves and the best's test accuracy",
                 dict(epochs=None, lr=0.002, seed=42)),
    "confusion": ("the 36x36 test confusion matrix as an image, and the most confused pairs",
                  dict(epochs=None, lr=None, seed=42)),
    "autoencoder": ("the 1024-32-32-32-1024 autoencoder with momentum: loss curve, reconstructions, PSNR",
                    dict(epochs=100, lr=3e-5, seed=42)),
    "mnist-binary": ("MNIST 5 vs 8 with a 784-256-1 sigmoid network, full-batch gradient descent",
                     dict(epochs=300, lr=0.5, seed=0)),
    "mnist-multiclass": ("MNIST digits with 784-256-10, full-batch gradient descent, plus a stronger setting",
                         dict(epochs=100, lr=0.5, seed=0)),
    "demo": ("the main job: classify + weights + confusion + autoencoder into one output folder",
             dict(epochs=None, lr=None, seed=42)),
}


def _add_progress(parser) -> None:
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--progress", action="store_true", help="always draw progress bars on stderr")
    g.add_argument("--no-progress", action="store_true", help="never draw progress bars")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="fastnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    sub = parser.add_subparsers(dest="task", required=True, metavar="TASK")

    p = sub.add_parser("toy", help="train the coursework's 2-25-4 network on the 4-class Gaussian toy problem",
                       description="Train the coursework's toy network with the drop-in fastnn.nn API and print "
                                   "loss and accuracy every 100 epochs.")
    p.add_argument("--seed", type=int, default=42, help="seed of NumPy's global generator (default 42)")
    p.add_argument("--epochs", type=_positive_int, default=500, help="training epochs (default 500)")
    p.add_argument("--batch-size", type=_positive_int, default=5, help="mini-batch size (default 5)")
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument("--hidden", type=_positive_int, default=25, help="hidden units (default 25)")
    p.set_defaults(func=_cmd_toy)

    for name, (text, d) in _TASKS.items():
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("--data", default=None,
                       help="folder with the real data (hw36/, mnist/); default: $FASTNN_DATA, else the generated set "
                            "(the MNIST tasks need real data)")
        p.add_argument("--out", default="fastnn-output", help="output folder for plots and reports "
                                                              "(default fastnn-output)")
        p.add_argument("--seed", type=int, default=d["seed"], help=f"random seed (default {d['seed']})")
        if name in ("classify", "lr-study", "autoencoder", "mnist-binary", "mnist-multiclass"):
            p.add_argument("--epochs", type=_positive_int, default=d["epochs"],
                           help="training epochs (default: the recipe's)" if d["epochs"] is None
                           else f"training epochs (default {d['epochs']})")
            p.add_argument("--lr", type=_positive_float, default=d["lr"],
                           help="learning rate (default: the recipe's)" if d["lr"] is None
                           else f"learning rate (default {d['lr']:g})")
        if name == "classify":
            p.add_argument("--recipe", choices=("coursework", "strong"), default="coursework",
                           help="coursework: 1024-64-36 sigmoid, SGD lr 0.002, batch 64, 50 epochs; strong: "
                                "1024-256-36 ReLU, Adam, reshuffled, hw36 extra letters added (default coursework)")
        if name == "confusion":
            p.add_argument("--model", default=None, help="a trained classifier .npz (default: train one)")
        _add_progress(p)
        p.set_defaults(func=_cmd_task)

    model_help = ("a trained OCR classifier .npz (default: $FASTNN_OCR_MODEL, else the cached model, trained on "
                  "first use from --data / $FASTNN_DATA and cached in $FASTNN_CACHE or ~/.cache/fastnn)")
    p = sub.add_parser("ocr", help="read photographed pages of handwritten capitals and digits; print the text",
                       description="Find the characters, group them into lines and words, classify them and "
                                   "print the text of each IMAGE.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photo files (JPEG, PNG, ...)")
    p.add_argument("--model", default=None, help=model_help)
    p.add_argument("--data", default=None, help="real data folder to train the model from if none is cached")
    p.add_argument("--boxes", default=None, metavar="OUT.png",
                   help="draw the boxes over the binary image, coloured by line (several images: OUT-<image>.png)")
    p.add_argument("--json", action="store_true", help="print boxes, characters and confidences as JSON")
    _add_progress(p)
    p.set_defaults(func=_cmd_ocr, task="ocr")

    p = sub.add_parser("ocr-eval", help="read one page and print its character error rate against the expected text",
                       description="Print the recognised text, then `cer: ...` (Levenshtein distance / length of the "
                                   "expected text, case folded, only A-Z, 0-9 and spaces kept) and `cer_nospace: ...`.")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("expected", metavar="EXPECTED.txt")
    p.add_argument("--model", default=None, help=model_help)
    p.add_argument("--data", default=None, help="real data folder to train the model from if none is cached")
    _add_progress(p)
    p.set_defaults(func=_cmd_ocr_eval, task="ocr-eval")

    p = sub.add_parser("bench-epoch", help="time the fused epoch against the plain NumPy loop (and PyTorch)",
                       description="Time one training epoch of the 1024-HIDDEN-36 classifier (10800 generated "
                                   "samples of the hw36 shape) with the fused kernel, the plain NumPy loop and, "
                                   "when installed, PyTorch eager, in one run.")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="mini-batch size (default 32)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="fused dtype (default float32)")
    p.add_argument("--hidden", type=_positive_int, default=64, help="hidden units (default 64)")
    p.add_argument("--epochs", type=_positive_int, default=3, help="timed epochs, best is reported (default 3)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
    p.set_defaults(func=_cmd_bench_epoch)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv=None) -> int:
    """Run one task; every failure is one line on stderr and a non-zero exit, never a traceback.

    Exit codes: 2 for input the task refuses (a file, an argument, a model that does not fit), 3 for an
    internal error (set FASTNN_DEBUG=1 to see its traceback), 130 when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"fastnn {args.task}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"fastnn {args.task}: error: out of memory (is an input file far larger than it should be?)",
              file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, KeyError, OverflowError, ImportError) as exc:
        # ImportError: a missing compiled core or optional package, which the message says how to fix
        print(f"fastnn {args.task}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line, with the way to the traceback
        if os.environ.get("FASTNN_DEBUG"):
            raise
        print(f"fastnn {args.task}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(set FASTNN_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
