"""Time to accuracy: the shipped default recipe, training seconds to its final test accuracy.

The recipe of models/default.pt (784-256-64-10, Adam, one-cycle, batch 128, 40 augmented
epochs, seed 0) trained through mlp_core.train, as `python -m mlp_core train` does: on CUDA
the step captured as a CUDA graph unless --eager. Prints the test accuracy after every
epoch with the training seconds so far, the first epoch at or above --target, and the
whole command's wall time (Python imports, MNIST load, capture and training).

    python bench/bench_time_to_accuracy.py [--device cuda] [--eager] [--epochs 40] [--json]
"""

import time

START = time.perf_counter()  # before the heavy imports: the whole command's wall time

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_epoch import parse_with_mnist  # noqa: E402

from mlp_core import Callback, Recipe, train  # noqa: E402
from mlp_core.data import data_root  # noqa: E402


class EpochLog(Callback):
    """Training seconds and test accuracy after each epoch."""

    def __init__(self):
        self.rows: list[tuple[int, float, float]] = []

    def after_epoch(self, learn):
        self.rows.append((learn.epochs_done, learn.seconds, learn.test_accuracy))
        print(f"  epoch {learn.epochs_done:>2}: {learn.seconds:6.2f} s, "
              f"test accuracy {learn.test_accuracy:.4f}", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cpu, cuda or mps (default: cuda)")
    ap.add_argument("--eager", action="store_true", help="the eager loop, even on CUDA")
    ap.add_argument("--epochs", type=int, default=Recipe().epochs, help="(default: the recipe's)")
    ap.add_argument("--target", type=float, default=0.991, help="accuracy to reach (0.991)")
    args = parse_with_mnist(ap)
    root = str(data_root(args.data_dir))
    recipe = Recipe(epochs=args.epochs, device=args.device)  # the default recipe otherwise
    name = torch.cuda.get_device_name(0) if recipe.device.startswith("cuda") else "CPU"
    print(f"device {recipe.device} ({name}), torch {torch.__version__}; recipe {recipe.describe()}")
    log = EpochLog()
    learn, record = train(recipe, root, cbs=[log], eager=True if args.eager else None)
    wall = time.perf_counter() - START
    reached = next(((e, s) for e, s, acc in log.rows if acc >= args.target), None)
    how = "eager loop"
    if record["captured"]:
        how = f"captured CUDA graph; capture and warm-up {learn.capture_seconds:.2f} s of it"
    print(f"final test accuracy {learn.test_accuracy:.4f} after {learn.epochs_done} epochs "
          f"in {learn.seconds:.2f} s of training ({how})")  # fmt: skip
    if reached:
        print(f"first at or above {args.target:.1%}: epoch {reached[0]}, {reached[1]:.2f} s")
    else:
        print(f"never at or above {args.target:.1%}")
    print(f"whole command: {wall:.2f} s wall (imports, MNIST load, capture, training)")
    if args.json:
        print(json.dumps({
            "device": record["device"], "torch": torch.__version__, "captured": record["captured"],
            "test_accuracy": learn.test_accuracy, "epochs": learn.epochs_done,
            "train_seconds": learn.seconds, "wall_seconds": wall,
            "target": args.target, "target_epoch": reached[0] if reached else None,
            "target_seconds": reached[1] if reached else None,
        }))  # fmt: skip


if __name__ == "__main__":
    main()
