"""Each lesson's claim holds on real MNIST, on the short run its Claim describes."""

from dataclasses import replace
from functools import cache

import numpy as np
import pytest
import torch
from PIL import ImageFont

from digit_pictures import encode, find_fonts, glyph_mask, paint, place
from mlp_core.data import Split, load_mnist
from mlp_core.learner import Callback, DivergedError
from mlp_core.teach.lessons import BY_KEY, DIGITS, LESSONS, NOTEBOOK, Claim
from mlp_core.train import build_learner
from mlp_core.vision.digits import preprocess


class Losses(Callback):
    def __init__(self):
        self.seen = []

    def after_batch(self, learn):
        self.seen.append(learn.loss)


@pytest.fixture(scope="module")
def mnist(mnist_root):
    return load_mnist(True, mnist_root), load_mnist(False, mnist_root)


def photos(seed: int, least: float, most: float, n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """n phone photos of printed digits (tests/digit_pictures.py's "photo" style), each
    turned by least to most degrees either way, made 28x28 by preprocess like an upload."""
    rng = np.random.default_rng(seed)
    fonts = find_fonts()
    digits = []
    for i in range(n):
        digit, path = i % 10, fonts[(i // 10) % len(fonts)]  # every font draws all ten digits
        font = ImageFont.truetype(str(path), int(rng.integers(24, 160)))
        thicken = 0.0 if "Bold" in path.stem else rng.choice([0, 0.015, 0.03])
        angle = float(rng.uniform(least, most) * rng.choice([-1, 1]))
        mask = glyph_mask(digit, font, int(round(font.size * thicken)), angle)
        img = paint(place(mask, rng), "photo", rng)
        digits.append(preprocess(encode(img, "JPEG", rng)).tensor[0])  # (28, 28)
    return torch.stack(digits), torch.arange(n) % 10  # (n, 28, 28) float in [0, 1], (n,)


@cache
def digits(on: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The rendered digits DIGITS names and their labels: the same on every run."""
    return {"photos": lambda: photos(0, 0, 10), "tilted photos": lambda: photos(1, 15, 25)}[on]()


def outcome(recipe, claims: tuple[Claim, ...], mnist) -> dict:
    """Train `recipe` on the claims' first images for their epochs, on the CPU; its accuracy
    on each set of digits the claims name."""
    train, test = mnist
    claim = claims[0]
    first = Split(train.images[: claim.images], train.labels[: claim.images])
    losses = Losses()
    recipe = replace(recipe, epochs=claim.epochs, device="cpu")
    learn = build_learner(recipe, first, test, [losses])
    try:
        learn.fit(claim.epochs)
    except DivergedError:
        return {"diverged": True}
    seen = losses.seen
    accuracy = {"test": learn.test_accuracy}
    model = learn.model.eval()
    for on in {c.on for c in claims} - {"test"}:
        images, labels = digits(on)
        with torch.no_grad():
            right = (model(images).argmax(1) == labels).sum().item()
        accuracy[on] = right / len(labels)
    return {
        "diverged": False,
        "accuracy": accuracy,
        "first_loss": sum(seen[:10]) / 10,
        "last_loss": sum(seen[-10:]) / 10,
    }


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.key for lesson in LESSONS])
def test_each_lessons_claim_holds_on_real_mnist(lesson, mnist, report):
    torch.set_num_threads(1)  # the same arithmetic on any machine's thread count
    ours = outcome(lesson.recipe, lesson.claims, mnist)
    other = outcome(lesson.other, lesson.claims, mnist) if lesson.other else None
    if lesson.also and not (ours["diverged"] or other["diverged"]):
        mine, theirs = ours["accuracy"], other["accuracy"]
        report(
            f"without, with {lesson.other_name}: "
            + "; ".join(f"{on} {mine[on]:.1%}, {theirs[on]:.1%}" for on in DIGITS if on in mine)
        )
    for claim in lesson.claims:
        assert claim.holds(ours, other), (claim, ours, other)


def test_the_rendered_digits_look_like_mnist_digits():
    for on in DIGITS.keys() - {"test"}:
        images, labels = digits(on)
        assert images.shape == (200, 28, 28) and images.dtype == torch.float32
        assert 0 <= images.min() and images.max() <= 1 and images.sum((1, 2)).min() > 10
        assert sorted(labels.tolist()) == sorted(list(range(10)) * 20)


def test_lesson_recipes_are_valid_and_each_comparison_differs_in_what_it_names():
    for lesson in LESSONS:
        assert lesson.recipe.validate() is lesson.recipe
        assert len(lesson.text.split(". ")) <= 5, lesson.key  # a few sentences, no essay
        if lesson.other is not None:
            assert lesson.other.validate() != lesson.recipe and lesson.other_name
        for claim in lesson.also:  # the same two runs serve every claim
            assert (claim.images, claim.epochs) == (lesson.claim.images, lesson.claim.epochs)
            assert claim.on in DIGITS and lesson.other is not None
    assert BY_KEY["linear"].recipe.hidden == ()
    assert BY_KEY["notebook"].recipe == NOTEBOOK


def test_a_claim_fails_when_its_outcome_does_not_show_it():
    done = {"diverged": False, "accuracy": {"test": 0.9}, "first_loss": 2.3, "last_loss": 0.5}
    assert not Claim("diverges").holds(done)
    assert not Claim("reaches", 0.95).holds(done)
    assert not Claim("stalls", 0.95).holds(done)
    assert not Claim("beats", 0.05).holds(done, {**done, "accuracy": {"test": 0.88}})
    assert Claim("trails", 0.05).holds(done, {**done, "accuracy": {"test": 0.96}})
    assert not Claim("matches", 0.01).holds(done, {**done, "accuracy": {"test": 0.92}})
    assert not Claim("reaches", 0.1).holds({"diverged": True})
    # a claim on photos reads the photos' accuracies, not the test split's
    ours = {**done, "accuracy": {"test": 0.98, "photos": 0.90}}
    other = {**done, "accuracy": {"test": 0.98, "photos": 0.95}}
    assert Claim("trails", 0.04, on="photos").holds(ours, other)
    assert not Claim("trails", 0.04).holds(ours, other)
    assert not Claim("matches", 0.01, on="photos").holds(ours, other)
