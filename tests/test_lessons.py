"""Each lesson's claim holds on real MNIST, on the short run its Claim describes."""

from dataclasses import replace

import pytest
import torch

from mlp_core.data import Split, load_mnist
from mlp_core.learner import Callback, DivergedError
from mlp_core.lessons import BY_KEY, LESSONS, NOTEBOOK, Claim
from mlp_core.train import build_learner


class Losses(Callback):
    def __init__(self):
        self.seen = []

    def after_batch(self, learn):
        self.seen.append(learn.loss)


@pytest.fixture(scope="module")
def mnist(mnist_root):
    return load_mnist(True, mnist_root), load_mnist(False, mnist_root)


def outcome(recipe, claim: Claim, mnist) -> dict:
    """Train `recipe` on the claim's first images for its epochs, on the CPU."""
    train, test = mnist
    first = Split(train.images[: claim.images], train.labels[: claim.images])
    losses = Losses()
    recipe = replace(recipe, epochs=claim.epochs, device="cpu")
    learn = build_learner(recipe, first, test, [losses])
    try:
        learn.fit(claim.epochs)
    except DivergedError:
        return {"diverged": True}
    seen = losses.seen
    return {
        "diverged": False,
        "accuracy": learn.test_accuracy,
        "first_loss": sum(seen[:10]) / 10,
        "last_loss": sum(seen[-10:]) / 10,
    }


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.key for lesson in LESSONS])
def test_each_lessons_claim_holds_on_real_mnist(lesson, mnist):
    torch.set_num_threads(1)  # the same arithmetic on any machine's thread count
    ours = outcome(lesson.recipe, lesson.claim, mnist)
    other = outcome(lesson.other, lesson.claim, mnist) if lesson.other else None
    assert lesson.claim.holds(ours, other), (ours, other)


def test_lesson_recipes_are_valid_and_each_comparison_differs_in_what_it_names():
    for lesson in LESSONS:
        assert lesson.recipe.validate() is lesson.recipe
        assert len(lesson.text.split(". ")) <= 5, lesson.key  # a few sentences, no essay
        if lesson.other is not None:
            assert lesson.other.validate() != lesson.recipe and lesson.other_name
    assert BY_KEY["linear"].recipe.hidden == ()
    assert BY_KEY["notebook"].recipe == NOTEBOOK


def test_a_claim_fails_when_its_outcome_does_not_show_it():
    done = {"diverged": False, "accuracy": 0.9, "first_loss": 2.3, "last_loss": 0.5}
    assert not Claim("diverges").holds(done)
    assert not Claim("reaches", 0.95).holds(done)
    assert not Claim("stalls", 0.95).holds(done)
    assert not Claim("beats", 0.05).holds(done, {**done, "accuracy": 0.88})
    assert Claim("trails", 0.05).holds(done, {**done, "accuracy": 0.96})
    assert not Claim("matches", 0.01).holds(done, {**done, "accuracy": 0.92})
    assert not Claim("reaches", 0.1).holds({"diverged": True})
