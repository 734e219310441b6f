"""The stepper: each step is Learner.one_batch, what it records is what the step did, its
bounds hold, and the Step through page's teaching claims hold on real MNIST from a seed."""

import copy
import statistics
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from conftest import REPO
from mlp_core import DigitClassifier, Learner, load_checkpoint, load_mnist
from mlp_core.data import Batches, to_float
from mlp_core.optim import OPTIMIZERS
from mlp_core.recipe import RecipeError
from mlp_core.teach import stepper
from mlp_core.teach.stepper import DEFAULT, MAX_BATCH, Stepper, code_for

STEPS = ("batch", "predict", "loss", "gradients", "step", "after", "repeat")


@pytest.fixture(scope="module")
def tiny(tiny_mnist):
    return load_mnist(True, tiny_mnist), load_mnist(False, tiny_mnist)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread, as the dashboard's pages step (ui/server.py): tiny ops on two busy cores
    crawl when two threads wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mnist(mnist_root):
    return load_mnist(True, mnist_root), load_mnist(False, mnist_root)


def twin(s: Stepper) -> Learner:
    """A Learner holding copies of the stepper's weights and optimizer state, as they are now."""
    model, opt = copy.deepcopy((s.model, s.learn.opt))  # one copy: opt keeps model's params
    return Learner(model, None, opt, cbs=())


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert_close(x, y, msg=name)  # float32 tolerances


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_step_is_one_batch_of_a_learner_from_the_same_state(tiny, optimizer):
    s = Stepper(replace(DEFAULT, optimizer=optimizer, lr=0.01), *tiny)
    s.step()  # momentum and Adam's averages hold something from here on
    ref = twin(s)
    xb, yb = s.next_batch()
    rec = s.step_on(xb, yb, pick=3)
    ref.one_batch(xb, yb)
    assert_same_weights(s.model, ref.model)
    assert rec.loss_before == pytest.approx(ref.loss, rel=1e-6)
    assert_close(rec.losses_before.mean(), torch.tensor(rec.loss_before))
    with torch.no_grad():
        after = ref.model(xb)  # "after" is a fresh forward pass with the new weights
    assert_close(rec.probs_after, after.softmax(1))
    assert_close(rec.losses_after, F.cross_entropy(after, yb, reduction="none"))
    assert torch.equal(to_float(rec.images), xb)  # the pictures shown are the batch's
    assert rec.step == s.steps == 2 and s.losses == [(1, s.losses[0][1]), (2, rec.loss_before)]


def test_the_batches_follow_the_seed_and_reset_starts_again(tiny):
    s = Stepper(DEFAULT, *tiny)
    start = copy.deepcopy(s.model.state_dict())
    torch.manual_seed(DEFAULT.seed)
    assert_same_weights(s.model, DigitClassifier(DEFAULT.hidden, DEFAULT.init))
    gen = torch.Generator().manual_seed(DEFAULT.seed)
    first = [yb for _, yb in Batches(tiny[0], DEFAULT.batch_size, generator=gen)][:3]
    recs = [s.step() for _ in range(3)]
    assert [r.labels.tolist() for r in recs] == [yb.tolist() for yb in first]
    s.reset()
    assert all(torch.equal(v, start[k]) for k, v in s.model.state_dict().items())
    assert s.steps == 0 and s.last is None and s.losses == []
    assert torch.equal(s.step().labels, first[0])


def test_the_basic_step_is_minus_lr_times_the_gradient_and_the_units_shown_move_most(tiny):
    rec = Stepper(replace(DEFAULT, lr=0.05), *tiny).step()
    assert_close(rec.unit_changes, -0.05 * rec.unit_grads)
    norms = rec.unit_grads.flatten(1).norm(dim=1)
    assert norms.tolist() == sorted(norms.tolist(), reverse=True)


def test_an_epoch_runs_in_chunks_and_ends_on_a_full_record(tiny):
    s = Stepper(replace(DEFAULT, batch_size=8), *tiny)  # 600 pictures: 75 steps
    done = list(s.run(10_000, pick=2, chunk=20))
    assert done == [20, 40, 60, 75] and s.steps == 75 and s.last.step == 75
    assert s.last.pick == 2 and len(s.losses) == 75 and s.accuracies[-1][0] == 75


def test_an_epoch_asked_to_stop_ends_after_its_chunk_on_a_full_record(tiny):
    s = Stepper(replace(DEFAULT, batch_size=8), *tiny)
    asked = []
    done = list(s.run(75, chunk=20, go_on=lambda: asked.append(1) and False))
    assert done == [20, 75] and len(asked) == 1  # the 75 the generator ends with: all asked
    assert s.steps == 21 and s.last.step == 21


def test_the_loss_history_stays_bounded(tiny, monkeypatch):
    monkeypatch.setattr(stepper, "MAX_POINTS", 16)
    s = Stepper(replace(DEFAULT, batch_size=4, hidden=(8,)), *tiny)
    list(s.run(150))
    assert len(s.losses) <= 16 and s.losses[-1][0] == s.steps == 150
    assert [step for step, _ in s.losses] == sorted(step for step, _ in s.losses)


def test_settings_change_between_steps_and_bad_ones_get_a_sentence(tiny):
    s = Stepper(DEFAULT, *tiny)
    s.set_optimizer("adam", 0.001)
    assert s.step().optimizer == "adam" and s.last.lr == 0.001
    for lr in (0, -1, float("nan"), float("inf"), 1e9, "0.1", True):
        with pytest.raises(RecipeError, match="learning rate"):
            s.set_optimizer("basic", lr)
    with pytest.raises(RecipeError, match="optimizer"):
        s.set_optimizer("../etc", 0.1)
    for b in (0, -3, MAX_BATCH + 1, 2.5, True):
        with pytest.raises(RecipeError, match="batch size"):
            s.set_batch_size(b)
    for pick in (-1, 16, 1.0, True):
        with pytest.raises(RecipeError, match="picture"):
            s.step_on(*s.next_batch(), pick=pick)
    s.set_batch_size(4)
    assert len(s.step(pick=3).labels) == 4 and s.recipe.optimizer == "adam"


def test_a_recipe_is_checked_and_priced_before_a_stepper_is_made_and_on_a_new_batch_size(tiny):
    with pytest.raises(RecipeError, match="hidden layers"):
        Stepper(replace(DEFAULT, hidden=(8,) * 9), *tiny)
    asked = []
    s = Stepper(DEFAULT, *tiny, price=asked.append)
    s.set_batch_size(4)
    assert [r.batch_size for r in asked] == [16, 4]
    assert s.params == 784 * 256 + 256 + 256 * 64 + 64 + 64 * 10 + 10

    def refuse(recipe):
        raise RecipeError("too dear")

    with pytest.raises(RecipeError, match="too dear"):
        Stepper(DEFAULT, *tiny, price=refuse)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_the_code_beside_each_step_is_the_code_that_runs(optimizer):
    import inspect

    shown = {step: code_for(step, optimizer) for step in STEPS}
    assert "loss.backward()" in shown["gradients"][0].text
    assert shown["step"][1].where.endswith(".step") and "def step" in shown["step"][1].text
    name = {"basic": "BasicOptim", "sgd": "SGD", "adam": "Adam"}[optimizer]
    assert shown["step"][1].where == f"mlp_core/optim.py: {name}.step"
    for codes in shown.values():
        for code in codes:
            assert code.text.strip()
    src = inspect.getsource(Learner.one_batch)  # the lines shown are lines of the code
    for line in shown["loss"][0].text.splitlines() + shown["gradients"][0].text.splitlines():
        assert line in src


# -- the page's teaching claims, on real MNIST from the seed --------------------------------


@pytest.mark.mnist
def test_at_the_default_learning_rate_each_step_lowers_its_batchs_loss(mnist):
    s = Stepper(DEFAULT, *mnist)
    recs = [s.step() for _ in range(20)]
    assert all(r.loss_after < r.loss_before for r in recs)


@pytest.mark.mnist
def test_with_a_learning_rate_of_10_the_loss_after_the_step_is_higher(mnist):
    s = Stepper(replace(DEFAULT, lr=10.0), *mnist)
    recs = [s.step() for _ in range(3)]
    assert all(r.loss_after > r.loss_before for r in recs)


@pytest.mark.mnist
def test_over_500_steps_the_loss_falls_and_the_test_accuracy_rises(mnist):
    s = Stepper(DEFAULT, *mnist)
    list(s.run(500))
    losses = [loss for _, loss in s.losses]
    assert statistics.mean(losses[-50:]) < 0.5 * statistics.mean(losses[:50])
    (_, before), (_, after) = s.accuracies[0], s.accuracies[-1]
    assert before < 0.3 and after > 0.85


@pytest.mark.mnist
def test_a_trained_networks_weights_barely_move(mnist):
    ckpt = load_checkpoint(REPO / "models" / "default.pt")
    recipe = replace(DEFAULT, hidden=ckpt.recipe.hidden, init=ckpt.recipe.init)
    trained = Stepper(recipe, *mnist, weights=ckpt.model.state_dict())
    assert_same_weights(trained.model, ckpt.model)
    fresh = Stepper(DEFAULT, *mnist)
    moved = [statistics.mean(s.step().typical[1] for _ in range(10)) for s in (fresh, trained)]
    assert moved[1] < moved[0] / 50


@pytest.mark.mnist
def test_adam_moves_every_weight_by_about_the_learning_rate(mnist):
    rec = Stepper(replace(DEFAULT, optimizer="adam", lr=0.001), *mnist).step()
    assert all(0.99e-3 < v < 1.01e-3 for v in rec.largest)
    assert all(0.99e-3 < v < 1.01e-3 for v in rec.typical[1:])  # the first layer: blank pixels
