"""The ``fastnn`` command line: ``fastnn <task> [options]``; ``fastnn <task> --help`` for each task."""

from __future__ import annotations

import argparse
import sys


def _cmd_toy(args) -> int:
    from .toy import train_toy

    result = train_toy(seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       hidden=args.hidden)
    print(f"loss: {result['loss']:.4f}")
    print(f"accuracy: {result['accuracy']:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastnn", description=__doc__)
    sub = parser.add_subparsers(dest="task", required=True, metavar="TASK")

    p = sub.add_parser("toy", help="train the coursework's 2-25-4 network on the 4-class Gaussian toy problem",
                       description="Train the coursework's toy network with the drop-in fastnn.nn API and print "
                                   "loss and accuracy every 100 epochs.")
    p.add_argument("--seed", type=int, default=42, help="seed of NumPy's global generator (default 42)")
    p.add_argument("--epochs", type=int, default=500, help="training epochs (default 500)")
    p.add_argument("--batch-size", type=int, default=5, help="mini-batch size (default 5)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument("--hidden", type=int, default=25, help="hidden units (default 25)")
    p.set_defaults(func=_cmd_toy)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, KeyError) as exc:
        print(f"fastnn {args.task}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
