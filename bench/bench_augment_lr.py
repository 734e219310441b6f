"""Does the learning-rate finder's suggestion train well, and what does augmentation reach?

1. Runs the LR finder on the default recipe (its starting weights, real MNIST), prints the
   suggestion, then trains the default recipe for 3 epochs at that rate and prints the test
   accuracy (the dashboard's "Use lr" button should never lead a learner astray: >= 0.97).
2. With --full, trains the default recipe as shipped (augmented, 40 epochs) and prints its
   test accuracy (models/default.pt: 0.9918).

    python bench/bench_augment_lr.py [--full] [--epochs 3] [--device cpu] [--data-dir DIR]
"""

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlp_core import Recipe, build_learner, load_mnist
from mlp_core.data import data_root, mnist_available
from mlp_core.lr_finder import lr_find


def fit(recipe: Recipe, data_dir) -> tuple[float, float]:
    """Train `recipe`; return its test accuracy and the seconds it took."""
    learn = build_learner(recipe, load_mnist(True, data_dir), load_mnist(False, data_dir))
    learn.fit(recipe.epochs)
    return learn.test_accuracy, learn.seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="also train the shipped recipe (40 ep)")
    p.add_argument("--epochs", type=int, default=3, help="epochs at the suggestion (default 3)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument("--data-dir", default=None, help="holds MNIST/raw (default: $MNIST_ROOT)")
    args = p.parse_args()
    if not mnist_available(args.data_dir):
        sys.exit(f"MNIST not found under {data_root(args.data_dir)}: set MNIST_ROOT or --data-dir")

    recipe = Recipe(device=args.device)  # the default recipe: the one the Train form starts from
    print(f"default recipe: {recipe.describe()}, {recipe.schedule}, seed {recipe.seed}")
    start = time.perf_counter()
    res = lr_find(build_learner(recipe, load_mnist(True, args.data_dir)))
    suggestion = res.rounded  # what the dashboard's "Use lr" button puts in the form
    lowest = res.lrs[min(range(len(res.losses)), key=res.losses.__getitem__)]
    print(
        f"LR finder: {len(res.lrs)} batches from {res.lrs[0]:.0e} to {res.lrs[-1]:.2g} in "
        f"{time.perf_counter() - start:.1f} s; suggestion {res.suggestion:.3g} -> {suggestion:g} "
        f"(lowest loss at {lowest:.2g})"
    )
    acc, secs = fit(replace(recipe, lr=suggestion, epochs=args.epochs), args.data_dir)
    verdict = "ok" if acc >= 0.97 else "BELOW 0.97"
    print(
        f"{args.epochs} epochs at lr {suggestion:g}: test accuracy {acc:.4f} ({verdict}), ", end=""
    )
    print(f"{secs:.1f} s")
    # the recipe's own rate on the same budget, for comparison
    acc, secs = fit(replace(recipe, epochs=args.epochs), args.data_dir)
    print(
        f"{args.epochs} epochs at lr {recipe.lr:g} (the recipe's): test accuracy {acc:.4f}, ",
        end="",
    )
    print(f"{secs:.1f} s")

    if args.full:
        acc, secs = fit(recipe, args.data_dir)
        print(f"shipped recipe ({recipe.describe()}): test accuracy {acc:.4f}, {secs:.1f} s")


if __name__ == "__main__":
    main()
