"""What the new layers cost per epoch: the 'small' CNN recipe's convolutions on 2048 random 32x32 images
(batch 64, float32, Adam), plain and with Dropout, a GlobalAvgPool2D head, BatchNorm (after each conv, or
after the hidden dense layer), and on the step path (plain, and with BatchNorm after each conv).

Each variant runs in its own process, the variants interleaved over ``--rounds`` rounds; each process
times ``--epochs`` epochs of one fit after a warm-up epoch (between the fit's epoch callbacks) and reports
their median; the table gives the median of those.

    python bench/layer_costs.py [--rounds 3] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

VARIANTS = ("plain", "dropout", "gap", "step_path", "batchnorm", "batchnorm_dense", "batchnorm_step_path")


def one(variant: str, epochs: int) -> dict:
    import warnings

    import numpy as np

    from fastnn.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D
    from fastnn.models import CNN
    from fastnn.train import Trainer

    warnings.simplefilter("ignore")  # (random labels: the chance-level warning)
    rng = np.random.default_rng(0)
    X = rng.random((2048, 32, 32, 1), dtype=np.float32)
    y = rng.integers(0, 36, 2048)
    conv = [Conv2D(1, 16, 5), MaxPool2D(2), Conv2D(16, 32, 5, padding="same"), MaxPool2D(2)]
    head = [Flatten(), Dense(7 * 7 * 32, 128, "relu"), Dense(128, 36, "softmax")]
    layers = {"plain": conv + head, "step_path": conv + head,
              "dropout": conv + [Flatten(), Dropout(0.25), Dense(7 * 7 * 32, 128, "relu"), Dropout(0.5),
                                 Dense(128, 36, "softmax")],
              "gap": conv + [GlobalAvgPool2D(), Dense(32, 36, "softmax")],
              "batchnorm": [conv[0], BatchNorm(), conv[1], conv[2], BatchNorm(), conv[3]] + head,
              "batchnorm_dense": conv + [head[0], head[1], BatchNorm(), head[2]]}.get(variant)
    if variant == "batchnorm_step_path":
        layers = [conv[0], BatchNorm(), conv[1], conv[2], BatchNorm(), conv[3]] + head
    trainer = Trainer(CNN((32, 32, 1), layers, dtype="float32"), optimizer="adam", lr=1e-3, batch_size=64,
                      progress=False, fused=not variant.endswith("step_path"))
    # One fit, timed between its epoch callbacks: what a fit does once at its end (the chance-level check
    # predicts up to 2048 rows when a model learned nothing, as on these random labels) is left out.
    marks = []
    trainer.fit(X, y, epochs + 1, callback=lambda epoch, history: marks.append(time.perf_counter()))
    times = [b - a for a, b in zip(marks, marks[1:])]  # (the first epoch, a warm-up, is left out)
    return {"variant": variant, "compiled": trainer.fused, "ms": statistics.median(times) * 1000}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.epochs)))
        return 0
    load = os.getloadavg()[0]
    rows = {}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            out = subprocess.run([sys.executable, __file__, "--one", variant, "--epochs", str(args.epochs)],
                                 capture_output=True, text=True, check=True).stdout
            r = json.loads(out)
            rows.setdefault(variant, (r["compiled"], []))[1].append(r["ms"])
    print(f"{'variant':<20} {'compiled':<9} {'ms/epoch':>9}  (load {load:.2f} -> {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} CPUs)")
    for variant, (compiled, ms) in rows.items():
        print(f"{variant:<20} {str(compiled):<9} {statistics.median(ms):>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
