"""The CUDA path: run on a machine with a GPU (`pytest -m gpu`); skipped where there is none.

Beside the eager loop's checks: the captured step (graph_step.py) against the eager loop,
the one-cycle rate and the augmentation inside the graph, no wait for the GPU between
reads, a stop within 0.25 s, and the fallback when capture fails.
"""

import logging

import pytest
import torch
from torch.testing import assert_close

from conftest import Nudge, assert_draws_follow_the_seed, assert_within_rounding, wait_for
from mlp_core import (
    Callback,
    OneCycle,
    Recipe,
    build_learner,
    load_checkpoint,
    load_mnist,
    usable_devices,
)
from mlp_core.fast.graph_step import READ_EVERY_STEPS, GraphLearner, StaticStep
from mlp_core.service.jobs import TrainingJob
from mlp_core.service.trainer import Trainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
]


@pytest.fixture(scope="module")
def tiny(tiny_mnist):
    return load_mnist(True, tiny_mnist), load_mnist(False, tiny_mnist)


class Record(Callback):
    def __init__(self):
        self.losses = []

    def after_batch(self, learn):
        self.losses.append(learn.loss)


def test_cuda_devices_are_listed_with_names():
    devices = dict(usable_devices())
    assert "cuda:0" in devices and torch.cuda.get_device_name(0) in devices["cuda:0"]


def test_one_epoch_on_cuda_keeps_data_on_the_gpu(mnist_root):
    recipe = Recipe(epochs=1, device="cuda")
    learn = build_learner(recipe, load_mnist(True, mnist_root), load_mnist(False, mnist_root))
    assert learn.train.split.images.device.type == "cuda"  # the whole split lives on the GPU
    assert learn.test.images.device.type == "cuda"
    learn.fit(1)
    assert isinstance(learn, GraphLearner) and learn.captured  # CUDA's default: the graph
    assert learn.test_accuracy >= 0.90
    assert all(p.device.type == "cuda" for p in learn.model.parameters())


def test_same_seed_same_start_on_cpu_and_cuda(tiny_mnist):
    train, test = load_mnist(True, tiny_mnist), load_mnist(False, tiny_mnist)
    cpu = build_learner(Recipe(batch_size=50, seed=5), train, test)
    gpu = build_learner(Recipe(batch_size=50, seed=5, device="cuda"), train, test)
    for a, b in zip(cpu.model.parameters(), gpu.model.parameters()):
        assert torch.equal(a, b.cpu())


@pytest.mark.parametrize("schedule", ["constant", "onecycle"])
@pytest.mark.parametrize("optimizer", ["basic", "sgd", "adam"])
def test_captured_step_gives_the_eager_losses_for_50_steps(tiny, optimizer, schedule):
    # 600 images in batches of 64: 9 full batches and one of 24 an epoch (two graphs), 5 epochs
    lr = 0.002 if optimizer == "adam" else 0.05
    recipe = Recipe(optimizer=optimizer, lr=lr, schedule=schedule, batch_size=64, epochs=5,
                    augment=False, seed=1, device="cuda")  # fmt: skip
    runs = {}
    for eager, cbs in (("eager", []), ("captured", []), ("nudged", [Nudge()])):
        rec = Record()
        learn = build_learner(recipe, *tiny, [rec, *cbs], eager=eager != "captured").fit(5)
        runs[eager] = learn, rec.losses
    (eager, eager_losses), (captured, captured_losses) = runs["eager"], runs["captured"]
    assert type(eager) is not GraphLearner
    assert isinstance(captured, GraphLearner) and captured.captured
    assert sorted(captured.static_step.graphs) == [24, 64]
    assert len(eager_losses) == len(captured_losses) == 50
    assert eager_losses[-1] < 0.5 * eager_losses[0]
    assert_within_rounding(captured_losses, eager_losses, runs["nudged"][1])  # as on the CPU


def test_one_cycle_rate_inside_the_graph_is_lr_at_step_by_step(tiny):
    learn = build_learner(Recipe(hidden=(16,), batch_size=64, augment=False, device="cuda"), *tiny)
    schedule = next(cb for cb in learn.cbs if isinstance(cb, OneCycle))
    per_epoch = len(learn.train)
    total = 3 * per_epoch
    lrs = []
    with torch.cuda.device(learn.device):
        step = StaticStep(learn, schedule, total)
        step.capture()
        assert step.graphs
        for k in range(total):
            if k % per_epoch == 0:
                step.new_epoch()
            step(step.epoch_sizes[k % per_epoch])
            step.read()
            lrs.append(float(learn.opt.lr))  # the rate replay k computed and used
    expected = [schedule.lr_at(min(1.0, k / total)) for k in range(total)]
    f64 = torch.float64
    assert_close(torch.tensor(lrs, dtype=f64), torch.tensor(expected, dtype=f64), rtol=1e-6, atol=0)


def test_augmentation_in_the_graph_draws_anew_each_replay_and_repeats_with_the_seed(tiny):
    def replays(seed: int) -> list[torch.Tensor]:
        recipe = Recipe(hidden=(16,), batch_size=60, augment=True, seed=seed, device="cuda")
        learn = build_learner(recipe, *tiny)
        with torch.cuda.device(learn.device):
            step = StaticStep(learn, None, total_steps=100)
            seen = []
            augment = step.augment
            step.augment = lambda x, g: seen.append(augment(x, g)) or seen[-1]
            step.new_epoch()
            step.capture()
            assert list(step.graphs) == [60] and step.generator.device.type == "cuda"
            out = seen[-1]  # the graph's own buffer for the augmented batch
            batches = []
            for _ in range(3):
                step.start.zero_()  # the same 60 images at every replay
                step(60)
                batches.append(out.clone())
        return batches

    a, b, c = replays(0), replays(0), replays(1)
    assert_draws_follow_the_seed(a, b, c)


def test_captured_steps_never_wait_for_the_gpu(tiny):
    learn = build_learner(Recipe(batch_size=64, augment=True, device="cuda"), *tiny)
    schedule = next(cb for cb in learn.cbs if isinstance(cb, OneCycle))
    with torch.cuda.device(learn.device):
        step = StaticStep(learn, schedule, total_steps=100)
        step.new_epoch()
        step.capture()
        torch.cuda.set_sync_debug_mode("error")  # any wait for the GPU raises
        try:
            for b in step.epoch_sizes:
                step(b)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        losses = step.read()
    assert len(losses) == len(step.epoch_sizes) and all(0 < x < 10 for x in losses)


def test_stop_ends_a_captured_job_at_the_next_loss_read(tiny_mnist, tmp_path):
    ended = {}

    class End(Callback):
        def after_fit(self, learn):
            ended["learner"] = learn

    recipe = Recipe(batch_size=20, epochs=1000, device="cuda")
    job = TrainingJob(recipe, tiny_mnist, tmp_path, cbs=[End()]).start()
    wait_for(lambda: job.snapshot().step >= 500, timeout=60, why=lambda: "the run did not start")
    job.stop()
    at_request = job.snapshot().step
    assert job.join(10)
    snap, learn = job.snapshot(), ended["learner"]
    assert snap.status == "stopped" and learn.captured
    # steps counted, not timed (as tests/test_graph_step.py on the CPU): acted on at the first
    # loss read after the request; the GPU ran ahead by less than one read (64 steps)
    assert snap.step <= at_request + 1
    assert 0 <= learn.static_step.steps - learn.step < READ_EVERY_STEPS


def test_a_capture_that_fails_on_cuda_trains_eagerly(tiny, monkeypatch, caplog):
    recipe = Recipe(optimizer="adam", batch_size=64, epochs=2, augment=False, device="cuda")
    expected = Record()
    build_learner(recipe, *tiny, [expected], eager=True).fit(2)

    def refuse(*args, **kwargs):
        raise RuntimeError("capture refused")

    monkeypatch.setattr(torch.cuda, "graph", refuse)  # after the warm-up steps have trained
    rec = Record()
    learn = build_learner(recipe, *tiny, [rec])
    with caplog.at_level(logging.WARNING, logger="mlp_core.fast.graph_step"):
        learn.fit(2)
    assert "capture refused" in caplog.text and not learn.captured
    assert_close(torch.tensor(rec.losses), torch.tensor(expected.losses), rtol=1e-5, atol=1e-6)


def test_a_run_on_cuda_in_a_worker_process_saves_a_model_that_loads_on_cpu(tiny_mnist, tmp_path):
    trainer = Trainer(models_dir=tmp_path, data_dir=tiny_mnist, worker="process")  # as served
    try:
        trainer.start(Recipe(epochs=2, batch_size=50, device="cuda:0"))
        snap = trainer.wait(120)
    finally:
        trainer.close()
    assert snap.status == "finished", snap.message
    assert snap.step == len(snap.losses) == snap.total_steps and "weights" in snap.extras
    ckpt = load_checkpoint(snap.out)
    assert ckpt.test_accuracy == snap.test_accuracy and ckpt.recipe.device == "cuda:0"
    assert ckpt.record["captured"] is True  # trained by the graph, CUDA's default
    assert next(ckpt.model.parameters()).device.type == "cpu"
