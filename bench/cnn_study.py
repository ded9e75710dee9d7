"""Which CNN recipe, with the new layers and training controls, does best on hw36's validation split?

    python bench/cnn_study.py [--data DIR] [--epochs N] [--only NAME[,NAME...]] [--seed 0] [--json OUT]

Trains each candidate below with ``fastnn.recipes.train_cnn`` (each is the 'small' recipe with some
settings replaced or added: ``fastnn.recipes.CNN_OPTIONS``), on hw36's train split plus its extra letters,
every one with the same seed and data, and keeps each one's epoch of best validation accuracy (as
``train_cnn`` does).  The choice is by **validation accuracy only**; then the test split is scored for two
models alone, the chosen candidate and 'small' (trained in the same run), so the test split chooses nothing.

Prints a table (candidate, validation accuracy and its epoch, training seconds and seconds per epoch), the
chosen candidate, both test accuracies, and the machine's load (``os.getloadavg``) before and after.
``--epochs N`` trains every candidate N epochs instead of its recipe's (the schedules then run their whole
curve over N epochs): a quicker look; ``--only`` trains those candidates only ('small' always runs, as the
baseline).  This is a measurement, not a test: it takes minutes per candidate on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

#: Candidates: settings replacing or added to the 'small' recipe's (``fastnn.recipes.CNN_RECIPES``).
#: Every one trains in the compiled epoch (BatchNorm and Dropout included).
CANDIDATES = {
    "small": {},
    "small+bn": dict(batch_norm=True),                              # BatchNorm after each conv (its ReLU)
    "small+dropout": dict(dropout=0.3),                             # Dropout(0.3) before each dense layer
    "small+gap": dict(head="gap"),                                  # GlobalAvgPool2D instead of Flatten
    "small+adamw-onecycle": dict(optimizer="adamw", weight_decay=0.05, lr=2e-3, lr_schedule="onecycle"),
    # the two best of a 6-epoch look (--epochs 6), together; and BatchNorm with Dropout, which may pay off only
    # over a whole run ('small' overfits in its second half: best validation epoch 10 of 20)
    "small+bn+adamw-onecycle": dict(batch_norm=True, optimizer="adamw", weight_decay=0.05, lr=2e-3,
                                    lr_schedule="onecycle"),
    "small+bn+dropout": dict(batch_norm=True, dropout=0.3),
}
BASELINE = "small"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load(data):
    """hw36's train/valid/test splits and its extra letters (the real data only)."""
    from fastnn.data import find_data_dir, load_dataset, load_hw36

    data_dir = find_data_dir(data) or (DEFAULT_DATA if DEFAULT_DATA.is_dir() else None)
    if data_dir is None:
        sys.exit("cnn_study: no hw36 data: pass --data DIR (the shared data folder) or set FASTNN_DATA")
    return load_dataset(data_dir), load_hw36(data_dir, "extra"), data_dir


def run(names, dataset, extra, *, seed=0, epochs=None, log=print):
    """Train each candidate of ``names``; return {name: row} with its settings, validation figures and times,
    and the trained model (``row['model']``)."""
    from fastnn.recipes import train_cnn

    rows = {}
    for name in names:
        t0 = time.perf_counter()
        model, hist, s = train_cnn(dataset, recipe="small", seed=seed, epochs=epochs, extra=extra, progress=False,
                                   **CANDIDATES[name])
        seconds = time.perf_counter() - t0
        best = hist.best_epoch
        rows[name] = dict(model=model, settings=s, valid_acc=hist.valid_acc[best], best_epoch=best + 1,
                          epochs=len(hist.valid_acc), seconds=seconds, s_per_epoch=seconds / len(hist.valid_acc),
                          history=hist.as_dict())
        log(f"  {name}: valid {hist.valid_acc[best]:.4f} (epoch {best + 1} of {len(hist.valid_acc)}), "
            f"{seconds:.0f} s, load {_load()}")
    return rows


def choose(rows) -> str:
    """The candidate of best validation accuracy (the baseline on a tie, then the first listed)."""
    order = sorted(rows, key=lambda n: (-rows[n]["valid_acc"], n != BASELINE, list(CANDIDATES).index(n)))
    return order[0]


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="candidates: " + "; ".join(f"{n} {c or '(the recipe)'}"
                                                                  for n, c in CANDIDATES.items()))
    p.add_argument("--data", help="the shared data folder (default: $FASTNN_DATA, else ../shared/data)")
    p.add_argument("--epochs", type=int, help="train every candidate this many epochs (default: the recipe's)")
    p.add_argument("--only", help="comma-separated candidates to train ('small' always runs)")
    p.add_argument("--seed", type=int, default=0, help="seed of every candidate (default %(default)s)")
    p.add_argument("--json", help="also write the table and settings here")
    args = p.parse_args(argv)
    names = list(CANDIDATES)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in CANDIDATES]
        if unknown:
            p.error(f"--only: unknown candidates {unknown}; expected some of {list(CANDIDATES)}")
        names = [n for n in CANDIDATES if n == BASELINE or n in wanted]
    if args.epochs is not None and args.epochs < 1:
        p.error("--epochs: expected a positive integer")

    from fastnn.models.layers import rows_to_images

    dataset, extra, data_dir = load(args.data)
    load_before = _load()
    print(f"hw36 at {data_dir}; seed {args.seed}; epochs {args.epochs or 'the recipe'}; load before {load_before}",
          flush=True)
    rows = run(names, dataset, extra, seed=args.seed, epochs=args.epochs, log=lambda s: print(s, flush=True))
    load_after = _load()
    chosen = choose(rows)
    print()
    print("| candidate | valid | best epoch | seconds | s/epoch |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        mark = " (chosen)" if name == chosen else ""
        print(f"| {name}{mark} | {100 * r['valid_acc']:.2f}% | {r['best_epoch']} of {r['epochs']} | "
              f"{r['seconds']:.0f} | {r['s_per_epoch']:.1f} |")
    Xt, Yt = dataset["test"]
    images = rows_to_images(Xt)
    tested = {name: rows[name]["model"].evaluate(images, Yt)[1] for name in dict.fromkeys([chosen, BASELINE])}
    print()
    print(f"chosen by validation accuracy: {chosen}")
    for name, acc in tested.items():
        print(f"test accuracy {name}: {100 * acc:.2f}%")
    print(f"load average (1, 5, 15 min) before: {load_before}; after: {load_after}")
    if args.json:
        out = {"seed": args.seed, "epochs": args.epochs, "chosen": chosen, "load_before": load_before,
               "load_after": load_after, "test_acc": tested,
               "rows": {n: {k: v for k, v in r.items() if k != "model"} for n, r in rows.items()}}
        Path(args.json).write_text(json.dumps(out, indent=1, default=lambda v: list(v) if isinstance(v, tuple)
                                              else str(v)))
    return rows, chosen, tested


if __name__ == "__main__":
    main()
