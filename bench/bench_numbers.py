"""Reading numbers: how many pictures `read_number` reads entirely right, and how fast.

Prints, for the shipped model and verifier (or --model, --verifier): the handwritten corpus
(numbers composed from MNIST's test digits, tests/handwritten_numbers.py; --seed) by spacing,
the targeted failure cases, the rendered-font numbers (tests/number_pictures.py;
--rendered-seed), the 250 rendered single digits read by `preprocess`
(tests/digit_pictures.py), and the seconds to read a 6-digit photo (the minimum over
--repeats). --misses lists what was misread.

    MNIST_ROOT=../shared/mnist python bench/bench_numbers.py [--n 300] [--seed 0] [--misses]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from handwritten_numbers import SPACINGS, render_handwritten_numbers, targeted  # noqa: E402
from number_pictures import render_number_pictures  # noqa: E402

from digit_pictures import render_digit_pictures  # noqa: E402
from mlp_core.checkpoint import load_checkpoint  # noqa: E402
from mlp_core.data import load_mnist  # noqa: E402
from mlp_core.metrics import predict_probs  # noqa: E402
from mlp_core.vision import ImageError, preprocess  # noqa: E402
from mlp_core.vision.numbers import read_number  # noqa: E402
from mlp_core.vision.verifier import load_verifier  # noqa: E402


def read_text(model, data: bytes, verifier=None) -> str:
    try:
        return read_number(model, data, verifier).text
    except ImageError as e:
        return f"error: {e}"


def score(model, pictures, name: str, misses: bool, verifier=None) -> float:
    """Print and return the share read entirely right; by spacing where the words name one."""
    got = [read_text(model, data, verifier) for data, _, _ in pictures]
    right = np.array([g == n for g, (_, n, _) in zip(got, pictures, strict=True)])
    parts = []
    for s in SPACINGS:
        mine = [f", {s}," in t for _, _, t in pictures]
        if any(mine):
            parts.append(f"{s} {right[mine].mean():.1%}")
    print(f"{name}: {right.mean():.1%} of {len(pictures)} entirely right  " + ", ".join(parts))
    if misses:
        for g, r, (_, _, t) in zip(got, right, pictures):
            if not r:
                print(f"    {t} -> {g}")
    return float(right.mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "models" / "default.pt"), help="default: shipped")
    p.add_argument("--n", type=int, default=300, help="handwritten numbers (default: 300)")
    p.add_argument("--seed", type=int, default=0, help="handwritten corpus seed (default: 0)")
    p.add_argument(
        "--rendered-seed", type=int, default=0, help="rendered-font corpus seed (default: 0)"
    )
    p.add_argument("--verifier", help="a verifier file (default: models/verifier.pt)")
    p.add_argument("--repeats", type=int, default=5, help="timing repeats (default: 5)")
    p.add_argument("--misses", action="store_true", help="list the misread pictures")
    args = p.parse_args()
    model = load_checkpoint(args.model).model
    verifier = load_verifier(args.verifier) if args.verifier else None
    test = load_mnist(train=False, download=False)
    images, labels = test.images.numpy(), test.labels.numpy()
    used: list = []
    hand = render_handwritten_numbers(images, labels, args.seed, args.n, used)
    score(model, hand, "handwritten (MNIST test digits)", args.misses, verifier)
    # the classifier's own ceiling: each number's digits read one by one from MNIST's pictures
    every = np.concatenate(used)  # (D,) indices of all the numbers' digits
    said = predict_probs(model, torch.from_numpy(images[every]).float() / 255).argmax(1).numpy()
    right = np.split(said == labels[every], np.cumsum([len(p) for p in used])[:-1])
    whole = np.mean([r.all() for r in right])
    print(f"  the same numbers, each digit read from MNIST's own 28x28 picture: {whole:.1%}")
    score(model, targeted(images, labels, args.seed), "targeted cases", args.misses, verifier)
    rendered = render_number_pictures(seed=args.rendered_seed, n=120)
    score(model, rendered, "rendered numbers", args.misses, verifier)
    singles = render_digit_pictures(seed=0)
    tensors = [preprocess(data).tensor for data, _, _ in singles]
    guess = predict_probs(model, torch.cat(tensors)).argmax(1).numpy()
    truth = np.array([d for _, d, _ in singles])
    print(f"rendered single digits: {np.mean(guess == truth):.1%} of {len(singles)}")
    six = next(d for d, n, t in hand if len(n) == 6 and "photo" in t)
    seconds = []
    for _ in range(args.repeats):
        began = time.perf_counter()
        read_text(model, six, verifier)
        seconds.append(time.perf_counter() - began)
    print(f"a 6-digit photo: {min(seconds):.3f} s (min of {args.repeats})")


if __name__ == "__main__":
    main()
