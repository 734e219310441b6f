"""On the real MNIST: one epoch learns, and the shipped model scores what the README says."""

import pytest
import torch

from conftest import REPO
from mlp_core import Recipe, load_checkpoint, load_mnist, train
from mlp_core.metrics import evaluate

pytestmark = pytest.mark.mnist


def test_one_epoch_of_the_default_recipe_reaches_90_percent(mnist_root):
    learn, record = train(Recipe(epochs=1), mnist_root)
    assert record["test_accuracy"] >= 0.90
    assert record["epochs"] == 1 and record["device"].startswith("cpu")


def test_notebook_recipe_learns_like_the_notebook(mnist_root):
    # the notebook's first epoch: BasicOptim, lr 0.01, batch 64, randn * 0.1 -> 0.88
    recipe = Recipe(init="notebook", optimizer="basic", lr=0.01, batch_size=64, epochs=1,
                    schedule="constant", weight_decay=0.0)  # fmt: skip
    _, record = train(recipe, mnist_root)
    assert 0.85 <= record["test_accuracy"] <= 0.93


def test_shipped_model_scores_at_least_98_percent(mnist_root):
    ckpt = load_checkpoint(REPO / "models" / "default.pt")
    result = evaluate(ckpt.model, load_mnist(False, mnist_root))
    assert result["accuracy"] >= 0.980
    assert result["accuracy"] == pytest.approx(ckpt.test_accuracy)  # the file tells the truth
    assert ckpt.recipe.hidden == (256, 64)
    assert sum(map(sum, result["confusion_matrix"])) == 10_000


def test_our_idx_reader_gives_what_torchvision_reads(mnist_root):
    from torchvision import datasets

    for is_train, n in [(True, 60_000), (False, 10_000)]:
        ours, theirs = load_mnist(is_train, mnist_root), datasets.MNIST(mnist_root, is_train)
        assert torch.equal(ours.images, theirs.data) and torch.equal(ours.labels, theirs.targets)
        assert len(ours) == n


def test_cut_numbers_add_their_whole_digits_to_what_is_learnt(mnist_root):
    from mlp_core.cli import cut_data
    from mlp_core.recipe import RecipeError
    from mlp_core.vision.compose import cut_digits

    recipe = Recipe(hidden=(), batch_size=1000, epochs=1, augment=False, cut_numbers=20, seed=4)
    with pytest.raises(RecipeError, match="train it with python -m mlp_core train, which cuts"):
        train(recipe, mnist_root)  # the library alone cannot cut: it never trains without them
    said = []
    learn, record = train(recipe, data=cut_data(recipe, mnist_root, said.append))
    mnist = load_mnist(True, mnist_root)
    images, labels = cut_digits(mnist.images.numpy(), mnist.labels.numpy(), 20, seed=4)
    split = learn.train.split  # MNIST's pictures, then the cut digits
    assert len(split) == 60_000 + len(images) and len(images) >= 40
    assert torch.equal(split.images[60_000:], torch.from_numpy(images))
    assert torch.equal(split.labels[60_000:], torch.from_numpy(labels))
    assert said[-1] == f"{len(images)} digits cut: {60_000 + len(images):,} pictures to learn from."
    assert record["test_accuracy"] >= 0.75  # 0.82: a linear model, one epoch of 60 steps
