"""The graph-ready training step, run without a graph on the CPU: the same arithmetic as the
eager Learner, losses read from a device buffer in chunks, the divergence guard and a stop
acting on those reads, and the fallback to the eager loop when capture fails."""

import itertools
import logging
import math
import sys
import time

import pytest
import torch
from torch.testing import assert_close

from conftest import Nudge, assert_draws_follow_the_seed, assert_within_rounding, wait_for
from mlp_core import (
    Callback,
    DivergedError,
    Learner,
    OneCycle,
    Recipe,
    build_learner,
    load_mnist,
)
from mlp_core.fast import graph_step
from mlp_core.fast.graph_step import READ_EVERY_SECONDS, READ_EVERY_STEPS, GraphLearner, StaticStep
from mlp_core.learner import DivergenceGuard
from mlp_core.service.jobs import TrainingJob


@pytest.fixture(scope="module")
def data(tiny_mnist):
    return load_mnist(True, tiny_mnist), load_mnist(False, tiny_mnist)


class Record(Callback):
    """What each after_batch saw: loss, step, batch index, batch size, learn.seconds."""

    def __init__(self):
        self.losses, self.steps, self.iters, self.sizes, self.seconds = [], [], [], [], []

    def after_batch(self, learn):
        self.losses.append(learn.loss)
        self.steps.append(learn.step)
        self.iters.append(learn.iter)
        self.sizes.append(learn.batch_size)
        self.seconds.append(learn.seconds)


def losses_of(recipe: Recipe, data, eager: bool, cbs=()) -> tuple[Learner, list[float]]:
    rec = Record()
    learn = build_learner(recipe, *data, [rec, *cbs], eager=eager).fit(recipe.epochs)
    return learn, rec.losses


@pytest.mark.parametrize("schedule", ["constant", "onecycle"])
@pytest.mark.parametrize("optimizer", ["basic", "sgd", "adam"])
def test_static_step_gives_the_eager_loops_losses_for_50_steps(data, optimizer, schedule):
    # 600 images in batches of 64: 9 full batches and one of 24 an epoch, 50 steps in 5 epochs
    lr = 0.002 if optimizer == "adam" else 0.05
    recipe = Recipe(hidden=(32,), optimizer=optimizer, lr=lr, schedule=schedule, batch_size=64,
                    epochs=5, augment=False, seed=1)  # fmt: skip
    eager, eager_losses = losses_of(recipe, data, eager=True)
    static, static_losses = losses_of(recipe, data, eager=False)
    assert type(eager) is Learner and isinstance(static, GraphLearner) and not static.captured
    assert len(eager_losses) == len(static_losses) == 50
    assert eager_losses[-1] < 0.5 * eager_losses[0]  # it learned: the comparison is not of noise
    # The static step does the same arithmetic in another order (foreach updates, a rate
    # tensor), so float32 rounds it differently, and 50 steps of training carry a rounding
    # forward: compared with how far a 1-ulp nudge of the start moves the eager loop itself.
    nudged, nudged_losses = losses_of(recipe, data, eager=True, cbs=[Nudge()])
    assert_within_rounding(static_losses, eager_losses, nudged_losses)
    assert_within_rounding(
        list(static.model.parameters()), list(eager.model.parameters()),
        list(nudged.model.parameters()),
    )  # fmt: skip


def test_one_cycle_rate_on_the_device_is_lr_at_step_by_step(data):
    learn = build_learner(Recipe(hidden=(16,), batch_size=64, augment=False), *data, eager=False)
    schedule = next(cb for cb in learn.cbs if isinstance(cb, OneCycle))
    per_epoch = len(learn.train)
    total = 3 * per_epoch
    step = StaticStep(learn, schedule, total)
    assert torch.is_tensor(learn.opt.lr) and torch.is_tensor(learn.opt.t)  # Adam: device state
    lrs = []
    for k in range(total):
        if k % per_epoch == 0:
            step.new_epoch()
        step(step.epoch_sizes[k % per_epoch])
        step.read()
        lrs.append(float(learn.opt.lr))  # the rate step k used
    expected = [schedule.lr_at(min(1.0, k / total)) for k in range(total)]
    f64 = torch.float64
    assert_close(torch.tensor(lrs, dtype=f64), torch.tensor(expected, dtype=f64), rtol=1e-6, atol=0)
    assert max(lrs) > 20 * lrs[0] and lrs[-1] < lrs[0]  # warmed up, then annealed


def test_losses_stay_in_a_device_buffer_until_read(data):
    learn = build_learner(Recipe(hidden=(16,), batch_size=50, augment=False), *data, eager=False)
    step = StaticStep(learn, None, total_steps=1000)
    step.new_epoch()
    for _ in range(5):
        step(50)
    kept = step.losses  # (64,): slots 0-4 written, the rest not yet
    assert kept.shape == (READ_EVERY_STEPS,)
    assert kept[:5].isfinite().all() and kept[5:].isnan().all()
    assert step.read() == kept[:5].tolist() and step.read() == []
    # the slots wrap around: steps 5..68 fill the buffer again without losing a loss
    for k in range(5, 5 + READ_EVERY_STEPS):
        if k % 12 == 0:  # 12 batches of 50 an epoch
            step.new_epoch()
        step(50)
    seen = step.read()
    assert len(seen) == READ_EVERY_STEPS and all(math.isfinite(x) for x in seen)
    assert seen[-5:] == kept[:5].tolist() and seen[:5] != seen[-5:]  # slots 0-4 rewritten
    for k in range(READ_EVERY_STEPS):
        if (69 + k) % 12 == 0:
            step.new_epoch()
        step(50)
    with pytest.raises(RuntimeError, match="read"):  # a 65th unread loss would overwrite one
        step(50)


def test_after_batch_fires_for_every_loss_in_chunks_at_each_read(data):
    rec = Record()
    recipe = Recipe(hidden=(16,), batch_size=10, epochs=2, augment=False)  # 60 batches an epoch
    learn = build_learner(recipe, *data, [rec], eager=False).fit(2)
    assert rec.steps == list(range(1, 121)) and learn.step == 120
    assert rec.iters == [*range(60), *range(60)] and rec.sizes == [10] * 120
    chunks = [len(list(g)) for _, g in itertools.groupby(rec.seconds)]  # one time per read
    assert sum(chunks) == 120 and len(chunks) < 120 and max(chunks) <= READ_EVERY_STEPS


def test_reads_come_every_tenth_of_a_second_when_steps_are_slow(data):
    rec = Record()
    learn = build_learner(Recipe(hidden=(16,), batch_size=50, augment=False), *data, [rec],
                          eager=False)  # fmt: skip

    def slow_loss(out, y):
        time.sleep(0.02)  # a step of at least 20 ms: about 5 a read
        return torch.nn.functional.cross_entropy(out, y)

    learn.loss_func = slow_loss
    learn.fit(2)
    chunks = [len(list(g)) for _, g in itertools.groupby(rec.seconds)]
    # about 0.1 s of work between reads (5 slow steps, fewer on a busy machine), never 64
    assert sum(chunks) == 24 and max(chunks) <= READ_EVERY_SECONDS / 0.02 + 1


@pytest.mark.parametrize("optimizer", ["basic", "sgd", "adam"])
def test_guard_stops_a_diverging_run_at_the_read_that_shows_it(data, optimizer):
    rec = Record()  # order 0: after the guard (-10)
    recipe = Recipe(hidden=(32,), optimizer=optimizer, lr=1e6, batch_size=10, epochs=5,
                    augment=False)  # fmt: skip
    learn = build_learner(recipe, *data, [rec], eager=False)
    with pytest.raises(DivergedError, match="diverged"):
        learn.fit(5)
    bad = learn.loss
    assert not math.isfinite(bad) or bad > DivergenceGuard.limit
    assert rec.losses and all(math.isfinite(x) and x <= DivergenceGuard.limit for x in rec.losses)
    assert len(rec.losses) == learn.step - 1  # every loss before the bad one, not the bad one
    # the device ran ahead of the host by less than one read's worth of steps
    assert learn.static_step.steps - learn.step < READ_EVERY_STEPS


def test_stop_ends_a_static_step_job_at_the_next_loss_read(tiny_mnist, tmp_path):
    ended = {}

    class End(Callback):
        def after_fit(self, learn):
            ended["learner"] = learn

    recipe = Recipe(hidden=(16,), batch_size=20, epochs=1000, augment=False)
    job = TrainingJob(recipe, tiny_mnist, tmp_path, cbs=[End()], eager=False).start()
    wait_for(lambda: job.snapshot().step >= 100, timeout=30, why=lambda: "the run did not start")
    job.stop()
    at_request = job.snapshot().step
    assert job.join(10)
    snap, learn = job.snapshot(), ended["learner"]
    assert snap.status == "stopped" and isinstance(learn, GraphLearner)
    # acted on at the first loss the host reads after the request (steps counted, not timed:
    # the reads come every 64 steps or 0.1 s of device work), and the device had run ahead
    # of the host by less than one read's worth of steps
    assert snap.step <= at_request + 1
    assert 0 <= learn.static_step.steps - learn.step < READ_EVERY_STEPS
    assert len(snap.losses) == snap.step < snap.total_steps


def test_a_static_step_job_feeds_the_dashboards_callbacks(tiny_mnist, tmp_path):
    recipe = Recipe(hidden=(16,), batch_size=10, epochs=2, augment=True)
    job = TrainingJob(recipe, tiny_mnist, tmp_path, eager=False).start()
    assert job.join(60)
    snap = job.snapshot()
    assert snap.status == "finished", snap.message
    assert snap.step == len(snap.losses) == snap.total_steps == 120 and snap.epoch == 2
    assert snap.samples_per_sec > 0 and len(snap.accuracies) == 2
    assert snap.extras["weights"].shape == (16, 28, 28) and snap.extras["weights_step"] == 120
    norms = snap.extras["norms"]
    assert len(norms) == 4 and all(n["grad norm"] > 0 for n in norms)  # 2 layers x 2 epochs


def test_augmentation_draws_anew_each_step_and_repeats_with_the_seed(data):
    def batches_seen(seed: int) -> list[torch.Tensor]:
        recipe = Recipe(hidden=(16,), batch_size=50, augment=True, seed=seed)
        learn = build_learner(recipe, *data, eager=False)
        step = StaticStep(learn, None, total_steps=100)
        seen = []
        augment = step.augment
        step.augment = lambda x, g: seen.append(augment(x, g)) or seen[-1]
        step.new_epoch()
        for _ in range(3):
            step.start.zero_()  # the same 50 images each time
            step(50)
        assert step.generator.device == learn.device  # drawn where the step runs
        return seen

    a, b, c = batches_seen(0), batches_seen(0), batches_seen(1)
    assert_draws_follow_the_seed(a, b, c)


def test_eager_path_is_the_plain_learner_with_python_numbers(data):
    for recipe in (Recipe(hidden=(16,), batch_size=50, epochs=1), Recipe(device="cpu")):
        assert type(build_learner(recipe, *data)) is Learner  # on a CPU: the teaching loop
    learn = build_learner(Recipe(hidden=(16,), batch_size=50, epochs=1), *data, eager=True).fit(1)
    assert isinstance(learn.opt.lr, float) and isinstance(learn.opt.t, int)  # never tensors


def test_capture_unavailable_falls_back_to_the_eager_loop(data, caplog):
    recipe = Recipe(hidden=(16,), optimizer="sgd", lr=0.05, batch_size=64, epochs=2, augment=False)
    _, expected = losses_of(recipe, data, eager=True)
    rec = Record()
    learn = build_learner(recipe, *data, [rec], eager=False)
    learn.capture = True  # asked for a graph on a CPU
    with caplog.at_level(logging.WARNING, logger="mlp_core.fast.graph_step"):
        learn.fit(2)
    assert "Could not capture the training step" in caplog.text and "CUDA device" in caplog.text
    assert not learn.captured and rec.losses == expected and learn.test_accuracy >= 0.9
    assert isinstance(learn.opt.lr, float) and learn.opt.bufs[0] is not None


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_capture_failing_midway_leaves_the_eager_loops_run(data, caplog, monkeypatch, optimizer):
    recipe = Recipe(hidden=(16,), optimizer=optimizer, batch_size=64, epochs=2, augment=False)
    _, expected = losses_of(recipe, data, eager=True)

    def warm_up_then_fail(self):
        for _ in range(3):  # trains for real, as the warm-up does, then the capture breaks
            self.start.zero_()
            self.run(64)
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(graph_step, "can_capture", lambda device: True)
    monkeypatch.setattr(StaticStep, "_record", warm_up_then_fail)
    rec = Record()
    learn = build_learner(recipe, *data, [rec], eager=False)
    with caplog.at_level(logging.WARNING, logger="mlp_core.fast.graph_step"):
        learn.fit(2)
    assert "stream is capturing" in caplog.text and "training eagerly instead" in caplog.text
    assert rec.losses == expected and not learn.captured  # as if capture had never been tried


def test_cli_eager_flag_reaches_train_and_not_the_recipe(monkeypatch):
    from mlp_core import cli

    seen = []

    def fake_train(recipe, data_dir=None, cbs=(), eager=None, data=None):
        seen.append((recipe, eager))
        raise cli.DataError("stop here")  # a user error: one line, exit 1

    # the module, not the function mlp_core re-exports under the same name
    monkeypatch.setattr(sys.modules["mlp_core.train"], "train", fake_train)
    assert cli.main(["train", "--eager", "--device", "cpu"]) == 1
    assert cli.main(["train", "--device", "cpu"]) == 1
    assert [eager for _, eager in seen] == [True, None]  # None: captured where the device can
    assert seen[0][0] == seen[1][0] == Recipe(device="cpu")  # not a recipe field


def test_progress_bar_reports_each_epoch_of_a_static_step_run(data):
    import io

    from mlp_core.cli import ProgressBar

    out = io.StringIO()
    recipe = Recipe(hidden=(16,), batch_size=50, epochs=2, augment=False)
    build_learner(recipe, *data, [ProgressBar(out)], eager=False).fit(2)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2 [" + "#" * 24 + "]")
    assert all("samples/s" in line and "test accuracy" in line for line in lines)
    assert " 0 samples/s" not in lines[0]  # the rate counts the batches fired in chunks
