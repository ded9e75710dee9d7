"""fastnn.sklearn.MLPClassifier beside sklearn.neural_network.MLPClassifier: fit time and accuracy on hw36.

Both fit the same network (1024-64-36, logistic hidden units), with the same solver, batch size (64),
learning rate and number of epochs (the stopping rule is switched off: ``n_iter_no_change`` larger than the
epochs), on the same float32 rows, in the same run.  Two ways to run it:

* ``make bench`` (pytest-benchmark): ``bench_sklearn_fit`` times ``BENCH_EPOCHS`` epochs per fit, three
  rounds each, and records each side's test accuracy in ``extra_info``; the speedups appear in the table at
  the end.  Without scikit-learn the benchmarks are skipped.
* ``python bench/bench_sklearn.py [--epochs 10] [--rounds 3] [--solver sgd adam]``: the two fits
  interleaved round by round (fastnn, scikit-learn, fastnn, ...), median times, and the validation and test
  accuracies side by side.

The rows are hw36's train split, found through ``fastnn.data.find_data_dir`` (``$FASTNN_DATA``) or the shared
data folder beside the checkout; without it the timings use random hw36-shaped rows and no accuracy is shown.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import epoch_benchmark as B  # beside this file
from fastnn.data import find_data_dir, load_hw36

HIDDEN = (64,)
BATCH_SIZE = 64
BENCH_EPOCHS = 3
#: learning_rate_init per solver, for the gradient of the batch's mean loss (scikit-learn's convention).
LEARNING_RATES = {"sgd": 0.1, "adam": 1e-3}
SEED = 0


def data_dir():
    """The shared data folder with hw36, or None."""
    found = find_data_dir()
    if found is None:
        beside = Path(__file__).resolve().parents[1].parent / "shared" / "data"
        found = beside if beside.is_dir() else None
    return found if found is not None and (found / "hw36").is_dir() else None


def load_data():
    """(X_train, y_train, splits): float32 rows and int labels; splits maps 'valid'/'test' to (X, y), or {} when
    hw36 is absent (the training rows are then random)."""
    where = data_dir()
    if where is None:
        X, Y = B.make_data(10800, seed=SEED, dtype="float32")
        return X, Y.argmax(axis=1), {}
    X, Y = load_hw36(where, "train")
    splits = {}
    for split in ("valid", "test"):
        Xs, Ys = load_hw36(where, split)
        splits[split] = (Xs.astype(np.float32), Ys.argmax(axis=1))
    return X.astype(np.float32), Y.argmax(axis=1), splits


def make_estimators(solver: str, epochs: int):
    """{'fastnn': ..., 'sklearn': ...}: the two MLPClassifiers with the same settings."""
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier

    from fastnn.sklearn import MLPClassifier

    settings = dict(hidden_layer_sizes=HIDDEN, activation="logistic", solver=solver, batch_size=BATCH_SIZE,
                    learning_rate_init=LEARNING_RATES[solver], momentum=0.9, nesterovs_momentum=True, alpha=1e-4,
                    max_iter=epochs, n_iter_no_change=epochs + 1, shuffle=True, random_state=SEED)
    return {"fastnn": MLPClassifier(**settings), "sklearn": SkMLPClassifier(**settings)}


def fit(estimator, X, y):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is reached on purpose
        return estimator.fit(X, y)


# ------------------------------------------------------------------------------ pytest-benchmark

@pytest.fixture(scope="module")
def hw36_rows():
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (pip install 'fastnn[sklearn]')")
    return load_data()


@pytest.mark.parametrize("impl", ["fastnn", "sklearn"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.benchmark(group="sklearn fit")
def bench_sklearn_fit(benchmark, tag, hw36_rows, solver, impl):
    """MLPClassifier.fit, 1024-64-36 logistic, batch 64, BENCH_EPOCHS epochs: fastnn.sklearn vs scikit-learn."""
    X, y, splits = hw36_rows
    tag(f"sklearn fit {solver} b={BATCH_SIZE}", f"{impl} MLPClassifier", "float32", fastnn=impl == "fastnn")
    fitted = []

    def run():
        est = make_estimators(solver, BENCH_EPOCHS)[impl]
        fitted.append(fit(est, X, y))

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0)
    est = fitted[-1]
    benchmark.extra_info["epochs"] = est.n_iter_
    benchmark.extra_info["final_loss"] = float(est.loss_curve_[-1])
    for split, (Xs, ys) in splits.items():
        benchmark.extra_info[f"{split}_accuracy"] = float(est.score(Xs, ys))


# ------------------------------------------------------------------------------ interleaved script

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--solver", nargs="+", default=["sgd", "adam"], choices=sorted(LEARNING_RATES))
    parser.add_argument("--sklearn-blas-threads", type=int, default=None,
                        help="limit NumPy's BLAS threads (threadpoolctl) during scikit-learn's fits; default: as is")
    args = parser.parse_args(argv)
    import contextlib

    from threadpoolctl import threadpool_limits
    X, y, splits = load_data()
    print(f"{X.shape[0]} training rows ({'hw36 train' if splits else 'random, hw36 not found'}), float32, "
          f"1024-64-36 logistic, batch {BATCH_SIZE}, {args.epochs} epochs, {args.rounds} rounds interleaved; "
          f"scikit-learn's BLAS threads: {args.sklearn_blas_threads or 'as is'}")
    for solver in args.solver:
        times = {"fastnn": [], "sklearn": []}
        last = {}
        for _ in range(args.rounds):
            for impl in ("fastnn", "sklearn"):
                est = make_estimators(solver, args.epochs)[impl]
                limit = (threadpool_limits(args.sklearn_blas_threads, user_api="blas")
                         if impl == "sklearn" and args.sklearn_blas_threads else contextlib.nullcontext())
                with limit:
                    t0 = time.perf_counter()
                    fit(est, X, y)
                    times[impl].append(time.perf_counter() - t0)
                last[impl] = est
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"\nsolver={solver} (learning_rate_init={LEARNING_RATES[solver]:g})")
        print(f"  fit time, median of {args.rounds}: fastnn {med['fastnn']:.2f} s, scikit-learn {med['sklearn']:.2f} s "
              f"({med['sklearn'] / med['fastnn']:.1f}x); all: fastnn {[round(t, 2) for t in times['fastnn']]}, "
              f"scikit-learn {[round(t, 2) for t in times['sklearn']]}")
        print(f"  final training loss: fastnn {last['fastnn'].loss_curve_[-1]:.4f}, "
              f"scikit-learn {last['sklearn'].loss_curve_[-1]:.4f}")
        for split, (Xs, ys) in splits.items():
            print(f"  {split} accuracy: fastnn {last['fastnn'].score(Xs, ys):.4f}, "
                  f"scikit-learn {last['sklearn'].score(Xs, ys):.4f}")


if __name__ == "__main__":
    main()
