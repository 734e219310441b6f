"""Reading numbers: how many pictures `read_number` reads entirely right, and how fast.

Prints, for the shipped model, verifier and pair reader (or --model, --verifier, --pairs):
the handwritten corpus (numbers composed from MNIST's test digits,
tests/handwritten_numbers.py; --seed) by spacing, the targeted failure cases, the
rendered-font numbers (tests/number_pictures.py; --rendered-seed), the 250 rendered single
digits read by `preprocess` (tests/digit_pictures.py), and the seconds to read a 6-digit
photo (the minimum over --repeats). --seeds reads several handwritten corpora instead (each
with its ceiling) and totals them: one corpus of 300 is too small to tell a point apart.
--misses lists what was misread; --why says, for each handwritten number misread, where its
reading went wrong (the corpus knows which digit owns each pixel).

    MNIST_ROOT=../shared/mnist python bench/bench_numbers.py [--n 300] [--seed 0] [--misses] [--why]
    MNIST_ROOT=../shared/mnist python bench/bench_numbers.py --seeds 8-15   # the reported corpus
"""

import argparse
import sys
import time
from collections import Counter
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
from mlp_core.vision import ImageError, preprocess, surer  # noqa: E402
from mlp_core.vision import numbers as numbers_module  # noqa: E402
from mlp_core.vision.compose import shares  # noqa: E402
from mlp_core.vision.numbers import Judged, judge, read_number  # noqa: E402
from mlp_core.vision.pairs import load_pair_reader  # noqa: E402
from mlp_core.vision.verifier import load_verifier  # noqa: E402


def read_text(model, data: bytes, verifier=None) -> tuple[str, bool]:
    """The number read, and whether the reader said it was unsure (`Number.unsure`: a digit
    below UNSURE, a reading nearly as likely named, or digits it could not part)."""
    try:
        number = read_number(model, data, verifier)
        return number.text, number.unsure
    except ImageError as e:
        return f"error: {e}", True


def by_spacing(right: np.ndarray, pictures) -> str:
    """`apart 96.0%, close 92.0%, ...`: the share of right (P,) per spacing the words name."""
    parts = []
    for s in SPACINGS:
        mine = [f", {s}," in t for _, _, t in pictures]
        if any(mine):
            parts.append(f"{s} {right[mine].mean():.1%}")
    return ", ".join(parts)


def score(model, pictures, name: str, misses: bool, verifier=None):
    """Print the share read entirely right, by spacing where the words name one, and how often
    the reader said it was unsure; return which pictures were read right and which said
    unsure, (P,) bool each."""
    got, unsure = zip(*[read_text(model, data, verifier) for data, _, _ in pictures])
    right = np.array([g == n for g, (_, n, _) in zip(got, pictures, strict=True)])
    unsure = np.array(unsure)
    said = by_spacing(right, pictures)
    print(f"{name}: {right.mean():.1%} of {len(pictures)} entirely right  {said}")
    print(
        f"  said unsure: {unsure[~right].sum()} of the {(~right).sum()} misread, "
        f"{unsure[right].sum()} of the {right.sum()} read right"
    )
    if misses:
        for g, r, (_, _, t) in zip(got, right, pictures):
            if not r:
                print(f"    {t} -> {g}")
    return right, unsure


TRUE = 0.85  # for --why: a candidate holding this share of a digit (and little else) is it
CAUSES = {  # the true cutting: in either of the reader's cuttings
    "wrong digit": "the true cutting is among the candidates, but the classifier (or, for two "
    "overlapping digits in one candidate, the pair reader) misreads a digit of it",
    "no true cutting": "no row of candidates holds each digit (85% of its ink and little "
    "else), or two neighbouring digits together: the cuts never part them well enough",
    "outscored": "the true cutting is read right, but another reading scores better (the "
    "verifier calls a digit of it a part, or a pair one whole digit)",
}


def true_path(j: Judged, held, pairs_held, number: str) -> list[tuple[int, str]] | None:
    """The best-scoring row of candidates, left to right over all the atoms, each holding one
    of the number's digits in turn (held (C, k) >= TRUE) read as that digit, or two
    neighbouring digits (pairs_held (C, k - 1) >= TRUE) read as that pair by the pair reader,
    as `read_number` may read them; as (candidate, its digit or two digits), None if none."""
    scores, pair_scores = j.scores, j.pair_scores  # (C, 10), (C, 100) or None
    best = {(0, 0): (0.0, [])}  # (atoms used, digits placed) -> (score, steps)
    for a in range(len(j.atoms)):
        for k in range(len(number)):
            if (a, k) not in best:
                continue
            score, path = best[(a, k)]
            for c, (i, end) in enumerate(j.spans):
                if i != a:
                    continue
                steps = [(1, held[c, k], scores[c, int(number[k])])]
                if pair_scores is not None and k + 1 < len(number):
                    steps.append((2, pairs_held[c, k], pair_scores[c, int(number[k : k + 2])]))
                for n, share, s in steps:
                    key = (end, k + n)
                    if share >= TRUE and s > -np.inf and best.get(key, (-np.inf,))[0] < score + s:
                        best[key] = (score + s, path + [(c, number[k : k + n])])
    found = best.get((len(j.atoms), len(number)))
    return None if found is None else found[1]


def misread(j: Judged, c: int, text: str) -> bool:
    """Whether candidate c's own best reading of its one or two digits differs from text."""
    if len(text) == 1:
        return j.probs[c].argmax() != int(text)
    return (j.left[c].argmax(), j.right[c].argmax()) != (int(text[0]), int(text[1]))


def path_score(j: Judged, path: list[tuple[int, str]]) -> float:
    """A row of (candidate, digit or two digits)'s score, as `read_number` scores it."""
    return sum(j.scores[c, int(t)] if len(t) == 1 else j.pair_scores[c, int(t)] for c, t in path)


def why(model, pictures, owners, right, verifier=None) -> None:
    """Print, for the numbers misread (right (P,) False), how many went wrong in each way of
    CAUSES."""
    seen = Counter()
    for (data, number, _), (cover, owner), ok in zip(pictures, owners, right, strict=True):
        if ok:
            continue
        try:
            judged = judge(model, data, verifier)
        except ImageError:
            seen["refused"] += 1
            continue
        # the true cutting in either cutting: the one whose true path scores best
        found = [
            (j, p) for j in judged
            if (p := true_path(j, *shares(j.cands, cover, owner, len(number)), number))
        ]  # fmt: skip
        if not found:
            seen["no true cutting"] += 1
            continue
        j, path = max(found, key=lambda jp: path_score(*jp))
        if any(misread(j, c, t) for c, t in path):
            seen["wrong digit"] += 1
        else:
            seen["outscored"] += 1
    print(f"  where the {sum(seen.values())} misread went wrong:")
    for cause, n in seen.most_common():
        print(f"    {n:3d} {cause}: {CAUSES.get(cause, 'the picture was refused')}")


def handwritten(model, images, labels, seed: int, args, verifier=None):
    """Read one handwritten corpus and print its figures: which numbers were read right and
    which said unsure, which the classifier reads right from MNIST's own pictures (its
    ceiling), (P,) bool each, and the pictures."""
    used: list = []
    owners: list = []
    hand = render_handwritten_numbers(images, labels, seed, args.n, used, owners)
    name = f"handwritten (MNIST test digits, seed {seed})"
    right, unsure = score(model, hand, name, args.misses, verifier)
    if args.why:
        why(model, hand, owners, right, verifier)
    # the classifier's own ceiling: each number's digits read one by one from MNIST's pictures
    every = np.concatenate(used)  # (D,) indices of all the numbers' digits
    said = predict_probs(model, torch.from_numpy(images[every]).float() / 255).argmax(1).numpy()
    ok = np.split(said == labels[every], np.cumsum([len(p) for p in used])[:-1])
    whole = np.array([r.all() for r in ok])
    print(
        f"  the same numbers, each digit read from MNIST's own 28x28 picture: {whole.mean():.1%}  "
        + by_spacing(whole, hand)
    )
    return right, unsure, whole, hand


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "models" / "default.pt"), help="default: shipped")
    p.add_argument("--n", type=int, default=300, help="handwritten numbers (default: 300)")
    p.add_argument("--seed", type=int, default=0, help="handwritten corpus seed (default: 0)")
    p.add_argument(
        "--seeds", help="read only the handwritten corpora of these seeds ('8-15') and total them"
    )
    p.add_argument(
        "--rendered-seed", type=int, default=0, help="rendered-font corpus seed (default: 0)"
    )
    p.add_argument("--verifier", help="a verifier file (default: models/verifier.pt)")
    p.add_argument(
        "--pairs",
        help="a pair reader file (default: models/pairs.pt), or 'none': every candidate read as "
        "one digit, as before the pair reader",
    )
    p.add_argument("--repeats", type=int, default=5, help="timing repeats (default: 5)")
    p.add_argument("--misses", action="store_true", help="list the misread pictures")
    p.add_argument("--why", action="store_true", help="where each misread number went wrong")
    args = p.parse_args()
    model = load_checkpoint(args.model).model
    verifier = load_verifier(args.verifier) if args.verifier else None
    if args.pairs == "none":  # a pair scores -inf: never read
        numbers_module._PAIR_BIAS = -np.inf
    elif args.pairs:
        pairs = load_pair_reader(args.pairs)
        numbers_module.shipped_pair_reader = lambda: pairs
    test = load_mnist(train=False, download=False)
    images, labels = test.images.numpy(), test.labels.numpy()
    if args.seeds:
        first, _, last = args.seeds.partition("-")
        seeds = range(int(first), int(last or first) + 1)
        right, unsure, ceiling, hands = zip(*[
            handwritten(model, images, labels, s, args, verifier) for s in seeds
        ])  # fmt: skip
        right, unsure, ceiling = map(np.concatenate, (right, unsure, ceiling))
        hand = sum(hands, [])
        print(
            f"seeds {args.seeds}: {right.sum()} of {len(right)} entirely right ({right.mean():.1%})"
            f"  {by_spacing(right, hand)}\n  said unsure: {unsure[~right].sum()} of the "
            f"{(~right).sum()} misread, {unsure[right].sum()} of the {right.sum()} read right\n"
            f"  each digit read from MNIST's own picture: {ceiling.mean():.1%}  "
            f"{by_spacing(ceiling, hand)}"
        )
        return
    hand = handwritten(model, images, labels, args.seed, args, verifier)[3]
    score(model, targeted(images, labels, args.seed), "targeted cases", args.misses, verifier)
    rendered = render_number_pictures(seed=args.rendered_seed, n=120)
    score(model, rendered, "rendered numbers", args.misses, verifier)
    singles = render_digit_pictures(seed=0)
    tensors = [p.tensor for p in surer(model, [preprocess(data) for data, _, _ in singles])]
    guess = predict_probs(model, torch.cat(tensors)).argmax(1).numpy()
    truth = np.array([d for _, d, _ in singles])
    print(f"rendered single digits: {np.mean(guess == truth):.1%} of {len(singles)}")
    six = next(d for d, n, t in hand if len(n) == 6 and "photo" in t)
    seconds = []
    for _ in range(args.repeats):
        began = time.perf_counter()
        read_number(model, six, verifier)
        seconds.append(time.perf_counter() - began)
    print(f"a 6-digit photo: {min(seconds):.3f} s (min of {args.repeats})")


if __name__ == "__main__":
    main()
