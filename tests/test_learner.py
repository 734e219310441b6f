"""The Learner on tiny synthetic data: loss falls, events fire in order, stops, divergence."""

import pytest
import torch

from mlp_core import (
    Batches,
    Callback,
    CancelFitException,
    DigitClassifier,
    DivergedError,
    Learner,
    OneCycle,
    Recipe,
    build_learner,
    make_optimizer,
)
from mlp_core.learner import EVENTS
from mlp_core.metrics import predict_probs


def make_learner(tiny, lr=0.05, cbs=(), optimizer="sgd") -> Learner:
    torch.manual_seed(0)
    model = DigitClassifier((32,), init="kaiming")
    opt = make_optimizer(optimizer, model.parameters(), lr)
    batches = Batches(tiny[0], 50, generator=torch.Generator().manual_seed(0))
    return Learner(model, batches, opt, test=tiny[1], cbs=cbs)


class Log(Callback):
    def __init__(self):
        self.events, self.losses = [], []

    def __getattribute__(self, name):
        if name in EVENTS:
            return lambda learn: self.events.append(name)
        return super().__getattribute__(name)

    def after_batch(self, learn): ...


def test_loss_falls_and_accuracy_is_high(tiny):
    losses = []

    class Record(Callback):
        def after_batch(self, learn):
            losses.append(learn.loss)

    learn = make_learner(tiny, cbs=[Record()]).fit(3)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    assert learn.test_accuracy > 0.9 and learn.epochs_done == 3 and not learn.stopped


def test_events_fire_in_order(tiny):
    log = Log()
    learn = make_learner(tiny, cbs=[log]).fit(2)
    n = len(learn.train)  # 10 batches per epoch
    per_epoch = ["before_epoch", *["after_batch"] * n, "after_epoch"]
    assert log.events == ["before_fit", *per_epoch, *per_epoch, "after_fit"]


def test_callback_can_stop_cleanly(tiny):
    class StopAt(Callback):
        def after_batch(self, learn):
            if learn.step == 13:
                raise CancelFitException

    log = Log()
    learn = make_learner(tiny, cbs=[StopAt(), log]).fit(5)
    assert learn.stopped and learn.step == 13 and learn.epochs_done == 1
    assert log.events[-1] == "after_fit"


@pytest.mark.parametrize("optimizer", ["basic", "sgd", "adam"])
def test_huge_learning_rate_diverges(tiny, optimizer):
    with pytest.raises(DivergedError, match="diverged"):
        make_learner(tiny, lr=1e6, optimizer=optimizer).fit(3)


def test_nan_loss_diverges(tiny):
    learn = make_learner(tiny)
    learn.loss_func = lambda out, y: out.sum() * float("nan")
    with pytest.raises(DivergedError, match="nan"):
        learn.fit(1)


def test_validate_is_exact_over_the_whole_split(tiny):
    learn = make_learner(tiny, lr=0.01).fit(1)
    split = tiny[1]
    preds = predict_probs(learn.model, split.images).argmax(1)
    exact = (preds == split.labels).sum().item() / len(split)
    # batch 64 leaves a last batch of 8: averaging per-batch accuracies would differ
    assert learn.validate(batch_size=64) == exact


def test_predict_probs_takes_one_image_or_a_batch_as_uint8_or_floats(tiny):
    model = make_learner(tiny).model
    img = tiny[1].images[0].float() / 255
    probs = predict_probs(model, img)
    assert probs.shape == (1, 10) and torch.allclose(probs.sum(1), torch.ones(1))
    torch.testing.assert_close(predict_probs(model, tiny[1].images[:1]), probs)
    assert predict_probs(model, tiny[1].images[:7].float().unsqueeze(1) / 255).shape == (7, 10)
    assert predict_probs(model, tiny[1].images, batch_size=64).shape == (200, 10)


def test_one_cycle_warms_up_then_anneals():
    sched = OneCycle(lr=1.0)
    lrs = [sched.lr_at(t / 100) for t in range(101)]
    peak = lrs.index(max(lrs))
    assert lrs[0] == pytest.approx(1 / 25) and max(lrs) == pytest.approx(1.0)
    assert peak == 25 and lrs[-1] == pytest.approx(1e-4)
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))


def test_same_seed_same_run_on_cpu(tiny):
    recipe = Recipe(hidden=(32,), epochs=2, batch_size=50, seed=3)
    a = build_learner(recipe, *tiny).fit(2)
    b = build_learner(recipe, *tiny).fit(2)
    c = build_learner(Recipe(hidden=(32,), epochs=2, batch_size=50, seed=4), *tiny).fit(2)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.model.linears()[0].weight, c.model.linears()[0].weight)


def test_one_cycle_in_tensor_ops_equals_lr_at():
    sched = OneCycle(lr=0.002)
    ts = [k / 97 for k in range(98)]
    got = [float(sched.lr_tensor(torch.tensor(t, dtype=torch.float64))) for t in ts]
    assert got == pytest.approx([sched.lr_at(t) for t in ts], rel=1e-12)
