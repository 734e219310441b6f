"""Training jobs: a run in its own thread that anyone can watch, stop, or see fail cleanly.

No Streamlit here: these drive mlp_core.service.jobs directly on tiny synthetic MNIST.
"""

import dataclasses
import functools
import math
import shutil
import threading
import time
import types
from pathlib import Path

import pytest
import torch
from pacing import Slow

from conftest import Raise, wait_until_training
from mlp_core import (
    Callback,
    DeviceError,
    Recipe,
    RecipeError,
    load_checkpoint,
    load_mnist,
    usable_devices,
)
from mlp_core.checkpoint import ModelFileError
from mlp_core.errors import UserError
from mlp_core.recipe import MAX_HIDDEN_LAYERS
from mlp_core.service import budget
from mlp_core.service.jobs import JobBusyError
from mlp_core.service.trainer import NotYoursError, Trainer

# 600 training images in batches of 60: 10 steps an epoch, a second or less a run
QUICK = dict(hidden=(32,), batch_size=60, epochs=3, lr=0.01, augment=False)


@pytest.fixture(scope="module")
def data(tiny_mnist):
    return load_mnist(True, tiny_mnist), load_mnist(False, tiny_mnist)


@pytest.fixture
def trainer(tmp_path, tiny_mnist):
    t = Trainer(models_dir=tmp_path / "models", data_dir=tiny_mnist)
    yield t
    t.close()  # never leave a run going into the next test


def test_a_run_finishes_and_saves_a_model_that_loads(trainer, tmp_path):
    recipe = Recipe(**QUICK)
    job = trainer.start(recipe)  # no data=: the job loads MNIST from the trainer's folder
    snap = trainer.wait(60)
    assert job.join(10)
    assert snap.status == "finished", snap.message
    assert not snap.active and trainer.training() == [] and snap.eta is None
    assert snap.step == len(snap.losses) == snap.total_steps == 3 * 10
    assert snap.epoch == len(snap.accuracies) == 3
    assert snap.progress == 1.0 and snap.samples_per_sec > 0
    assert snap.test_accuracy == snap.accuracies[-1] > 0.9  # the fake digits are easy
    assert snap.message == f"Test accuracy: {snap.test_accuracy:.4f}"
    ckpt = load_checkpoint(snap.out)
    assert ckpt.recipe == recipe
    assert ckpt.test_accuracy == snap.test_accuracy and ckpt.record["epochs"] == 3
    assert list((tmp_path / "models").iterdir()) == [Path(snap.out)]  # no temporary files left


def test_snapshots_stay_consistent_while_other_threads_read(trainer, data, monkeypatch):
    from mlp_core.service.history import LossHistory

    real = LossHistory.append

    def slow_append(self, loss):  # widen the window between "losses grew" and "step grew"
        real(self, loss)
        time.sleep(0.0005)

    monkeypatch.setattr(LossHistory, "append", slow_append)
    job = trainer.start(Recipe(**{**QUICK, "batch_size": 8, "epochs": 4}), data=data)
    problems, seen = [], []

    def read():
        prev = job.snapshot()
        while True:
            s = job.snapshot()
            if len(s.losses) != s.step or len(s.accuracies) != s.epoch:
                problems.append(f"torn snapshot: {s.step} steps, {len(s.losses)} losses")
            if s.total_steps and not 0 <= s.step <= s.total_steps:
                problems.append(f"step {s.step} outside 0..{s.total_steps}")
            if s.step < prev.step or s.epoch < prev.epoch or s.elapsed < prev.elapsed:
                problems.append(f"went backwards: {prev.step} -> {s.step}")
            if s.losses[: len(prev.losses)] != prev.losses:
                problems.append("the loss history was rewritten")
            seen.append(0 < s.step < s.total_steps)
            prev = s
            if not s.active:
                return
            time.sleep(0.001)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for r in readers:
        r.start()
    for r in readers:
        r.join(60)
    assert not problems, problems[:5]
    assert any(seen), "no reader saw the run in progress"
    assert job.snapshot().status == "finished"


def test_stop_ends_the_run_within_one_batch(trainer, data):
    job = trainer.start(
        Recipe(**{**QUICK, "batch_size": 6, "epochs": 5}), data=data, cbs=[Slow(0.01)]
    )
    assert job.snapshot().active  # start returned while the run goes on
    wait_until_training(job, 5)
    trainer.stop()
    at_request = job.snapshot().step
    assert job.join(10)
    snap = job.snapshot()
    assert snap.status == "stopped"
    assert snap.step <= at_request + 1 < 100  # 100 batches an epoch: stopped mid-epoch
    assert snap.epoch == 0 and snap.out is None and "nothing was saved" in snap.message
    assert trainer.training() == []


class StopAfterFirstEpoch(Callback):
    """Press the trainer's stop the moment the first epoch is tested, from inside the run."""

    order = 20  # after the job has recorded the epoch

    def __init__(self, trainer):
        self.trainer, self.step = trainer, None

    def after_epoch(self, learn):
        if self.step is None:
            self.step = learn.step
            self.trainer.stop()  # the server's own stop: every run (this one alone trains)


def test_a_run_stopped_after_an_epoch_saves_what_it_learned(trainer, data):
    stopper = StopAfterFirstEpoch(trainer)
    job = trainer.start(Recipe(**{**QUICK, "epochs": 5}), data=data, cbs=[stopper])
    assert job.join(30)
    snap = job.snapshot()
    assert snap.status == "stopped" and snap.epoch == 1
    assert stopper.step == 10 and snap.step <= stopper.step + 1
    assert snap.message == f"Test accuracy: {snap.test_accuracy:.4f} after 1 of 5 epochs"
    ckpt = load_checkpoint(snap.out)
    assert ckpt.record["epochs"] == 1 and ckpt.record["stopped_early"] is True


def test_an_exception_in_the_thread_fails_the_run_not_the_trainer(trainer, data):
    job = trainer.start(Recipe(**QUICK), data=data, cbs=[Raise(RuntimeError("disk on fire"))])
    assert job.join(30)
    snap = job.snapshot()
    assert snap.status == "failed" and snap.message == "RuntimeError: disk on fire"
    assert snap.step == 2 and snap.out is None  # the batch that raised was never recorded
    assert trainer.training() == []


def test_cuda_out_of_memory_fails_cleanly_and_the_next_run_starts(trainer, data):
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    job = trainer.start(Recipe(**QUICK), data=data, cbs=[Raise(oom)])
    assert job.join(30)
    snap = job.snapshot()
    assert snap.status == "failed"
    assert "CUDA ran out of memory" in snap.message and "smaller batch size" in snap.message
    trainer.start(Recipe(**QUICK), data=data)
    assert trainer.wait(60).status == "finished"
    assert [j.snapshot().status for j in trainer.runs] == ["failed", "finished"]


def test_a_huge_learning_rate_diverges_with_a_hint(trainer, data):
    trainer.start(Recipe(**{**QUICK, "lr": 1e6}), data=data)
    snap = trainer.wait(60)
    assert snap.status == "diverged"
    assert "diverged" in snap.message and "Lower the learning rate" in snap.message
    assert snap.out is None and all(math.isfinite(x) for x in snap.losses)


def test_an_invalid_recipe_is_refused_before_any_thread_starts(trainer, data):
    with pytest.raises(RecipeError, match="Epochs must be a whole number"):
        trainer.start(Recipe(**{**QUICK, "epochs": 0}), data=data)
    assert trainer.runs == []


def widen(monkeypatch, name: str, seconds: float = 0.05) -> None:
    """Sleep after Trainer.<name> returns: a check-then-act race window of microseconds
    becomes `seconds` long, so a missing lock shows in every run of the test."""
    real = getattr(Trainer, name)

    def slow(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        time.sleep(seconds)
        return result

    monkeypatch.setattr(Trainer, name, slow)


def at_once(n: int, call) -> tuple[list, list]:
    """Call `call()` from n threads released together: (results, refusal sentences)."""
    barrier, done, refused = threading.Barrier(n), [], []

    def one():
        barrier.wait()
        try:
            done.append(call())
        except JobBusyError as e:
            refused.append(str(e))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return done, refused


def test_two_starts_at_the_same_moment_train_one_and_queue_the_other(trainer, data, monkeypatch):
    widen(monkeypatch, "_next_for")  # between "the device is free" and taking it
    loops, busy = [], []  # training loops going now; how many each batch saw

    class Count(Callback):
        def before_fit(self, learn):
            loops.append(learn)

        def after_batch(self, learn):
            busy.append(len(loops))

        def after_fit(self, learn):
            loops.remove(learn)

    started, refused = at_once(
        2, lambda: trainer.start(Recipe(**QUICK), data=data, cbs=[Slow(0.01), Count()])
    )
    assert len(started) == 2 and not refused
    assert sorted(j.status == "queued" for j in started) == [False, True]
    assert trainer.wait(60).status == "finished"
    assert [j.snapshot().status for j in trainer.runs] == ["finished", "finished"]
    assert busy and max(busy) == 1, "two runs trained on one device at once"


def test_the_queue_limits_hold_when_many_press_start_together(trainer, data, monkeypatch):
    trainer.max_waiting_per_owner, trainer.max_waiting = 2, 3
    long = Recipe(**{**QUICK, "epochs": 50})  # trains until the test stops it
    first = trainer.start(long, data=data, cbs=[Slow(0.05)], owner="teacher")
    widen(monkeypatch, "_admit")  # between "there is room" and taking the place
    queued, refused = at_once(6, lambda: trainer.start(Recipe(**QUICK), data=data, owner="student"))
    assert len(queued) == 2 and len(refused) == 4
    assert set(refused) == {
        "You already have 2 runs waiting, the most one browser may queue; cancel one or "
        "wait until one starts."
    }
    trainer.start(Recipe(**QUICK), data=data, owner="other")  # the server's third place
    with pytest.raises(JobBusyError, match=r"The queue is full \(3 runs waiting\)"):
        trainer.start(Recipe(**QUICK), data=data, owner="late")
    assert [trainer.place(j) for j in trainer.runs] == [None, 1, 2, 3]
    assert trainer.starts_in(trainer.runs[2]) > trainer.starts_in(trainer.runs[1]) > 0
    trainer.stop(first.id, owner="teacher")
    trainer.wait(60)
    assert [j.status for j in trainer.runs] == ["stopped", "finished", "finished", "finished"]


def test_a_cookie_less_flood_from_one_address_cannot_fill_the_queue(trainer, data, monkeypatch):
    """Each forged browser is a new owner, but not a new address: one address gets a few
    places and an hour of work; a visitor from another address still gets a place, and no
    place is given that should start later than the stated bound (3 h by default)."""
    real = budget.check
    monkeypatch.setattr(  # every run priced at 15 min, as a 4096-4000 run on MNIST would be
        budget, "check", lambda *a, **k: dataclasses.replace(real(*a, **k), seconds=900.0)
    )
    long = Recipe(**{**QUICK, "epochs": 50})  # trains until the test stops it
    first = trainer.start(long, data=data, cbs=[Slow(0.05)], owner="t", address="10.0.0.9")
    wait_until_training(first, 2)
    flood, refused = [], None
    for i in range(50):  # a client dropping its cookies: a new browser each time
        try:
            flood.append(trainer.start(Recipe(**QUICK), data=data, owner=f"forged-{i}",
                                       address="203.0.113.7"))  # fmt: skip
        except JobBusyError as e:
            refused = str(e)
            break
    assert len(flood) == 4 and refused.startswith("Your runs waiting already add up to about")
    assert refused.count(".") == 1  # one sentence
    with pytest.raises(JobBusyError, match="Your network address already has"):
        trainer.max_visitor_hours = 100.0  # the count of places holds too
        for i in range(10):
            flood.append(trainer.start(Recipe(**QUICK), data=data, owner=f"more-{i}",
                                       address="203.0.113.7"))  # fmt: skip
    assert len(flood) == trainer.max_waiting_per_address == 6
    trainer.max_visitor_hours = 1.0
    normal = trainer.start(Recipe(**QUICK), data=data, owner="student", address="198.51.100.2")
    assert trainer.place(normal) == 7 and 0 < trainer.starts_in(normal) <= 3 * 3600
    # other addresses fill the rest of the 3 hours of waiting, then the queue says so
    with pytest.raises(JobBusyError, match=r"^The queue is full: a new run would wait about"):
        for i in range(50):
            trainer.start(Recipe(**QUICK), data=data, owner=f"b{i}", address=f"192.0.2.{i}")
    waits = [trainer.starts_in(r) for r in trainer.runs if trainer.place(r)]
    assert len(waits) < 20 and max(waits) <= 3 * 3600
    trainer._pace = 2.0  # this server trains at half the budget's pace: waits say so
    assert trainer.starts_in(normal) > 1.9 * waits[6]
    trainer.stop(owner=None)


def test_runs_queued_on_one_device_train_in_the_order_they_were_queued(trainer, data):
    order = []

    class Note(Callback):
        def __init__(self, i):
            self.i = i

        def before_fit(self, learn):
            order.append(self.i)

    runs = [trainer.start(Recipe(**{**QUICK, "epochs": 1}), data=data, cbs=[Note(i)])
            for i in range(5)]  # fmt: skip
    trainer.wait(60)
    assert order == list(range(5))
    assert all(r.status == "finished" for r in runs)


def test_only_the_browser_that_started_a_run_can_stop_cancel_or_delete_it(trainer, data):
    long = Recipe(**{**QUICK, "epochs": 50})  # trains until the test stops it
    mine = trainer.start(long, data=data, cbs=[Slow(0.02)], owner="alice")
    waiting = trainer.start(Recipe(**QUICK), data=data, owner="alice")
    for run in (mine, waiting):
        with pytest.raises(NotYoursError, match=f"Only the browser that started run {run.id}"):
            trainer.stop(run.id, owner="mallory")
    trainer.stop(owner="mallory")  # "stop mine" from someone with no runs: nothing happens
    assert mine.status in ("starting", "running") and waiting.status == "queued"
    trainer.stop(waiting.id, owner="alice")
    assert waiting.status == "cancelled"
    trainer.stop(mine.id, owner="alice")
    assert mine.join(10) and mine.status == "stopped"
    with pytest.raises(NotYoursError):
        trainer.delete(mine.id, owner="mallory")
    trainer.delete(waiting.id, owner="alice")
    assert trainer.runs == [mine]


def test_deleting_a_run_deletes_its_model_file_and_nothing_else(trainer, data):
    keep = trainer.start(Recipe(**QUICK), data=data, owner="a")
    gone = trainer.start(Recipe(**QUICK), data=data, owner="a")
    trainer.wait(60)
    assert Path(gone.snapshot().out).exists()
    with pytest.raises(UserError, match="has not ended"):
        trainer.delete(trainer.start(Recipe(**QUICK), data=data, owner="a").id, owner="a")
    trainer.wait(60)
    trainer.delete(gone.id, owner="a")
    assert not Path(gone.snapshot().out).exists() and Path(keep.snapshot().out).exists()
    assert gone not in trainer.runs


def test_the_divergence_guard_acts_before_any_callback_records_the_loss(trainer, data):
    from mlp_core.learner import DivergenceGuard

    recorded = []

    class Record(Callback):
        order = -5  # any callback: even one ordered before the run's own recording

        def after_batch(self, learn):
            recorded.append(learn.loss)

    trainer.start(Recipe(**{**QUICK, "lr": 1e6}), data=data, cbs=[Record()])
    snap = trainer.wait(60)
    assert snap.status == "diverged"
    assert max(snap.losses, default=0) <= DivergenceGuard.limit
    assert max(recorded, default=0) <= DivergenceGuard.limit
    assert all(math.isfinite(x) for x in snap.losses + recorded)


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@gpu
def test_a_run_on_the_gpu_saves_a_model_that_loads_on_the_cpu(trainer, data):
    assert ("cuda:0", f"cuda:0 ({torch.cuda.get_device_name(0)})") in usable_devices()
    trainer.start(Recipe(**QUICK, device="cuda:0"), data=data)
    snap = trainer.wait(120)
    assert snap.status == "finished", snap.message
    assert snap.device == "cuda:0" and snap.test_accuracy > 0.9
    ckpt = load_checkpoint(snap.out)
    assert ckpt.record["device"].startswith("cuda:0 (") and ckpt.recipe.device == "cuda:0"
    assert next(ckpt.model.parameters()).device.type == "cpu"


@pytest.mark.gpu
@gpu
def test_a_real_cuda_out_of_memory_fails_cleanly_and_the_gpu_is_usable_again(trainer, data):
    torch.cuda.set_per_process_memory_fraction(1e-6)  # a few bytes: the first copy fails
    try:
        trainer.start(Recipe(**QUICK, device="cuda:0"), data=data)
        snap = trainer.wait(120)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert snap.status == "failed", snap.message
    assert snap.message.startswith("CUDA ran out of memory")
    trainer.start(Recipe(**QUICK, device="cuda:0"), data=data)
    assert trainer.wait(120).status == "finished"


# -- limits: the budget, the models folder's quota, one learning-rate scan at a time ---------


def test_a_recipe_over_budget_is_refused_before_anything_starts(trainer, data):
    with pytest.raises(RecipeError, match="parameters; this server trains at most"):
        trainer.start(Recipe(hidden=(8192, 8192, 8192), batch_size=60), data=data)
    with pytest.raises(RecipeError, match="steps .* this server runs at most"):
        trainer.start(Recipe(batch_size=1, epochs=1000), data=data)
    assert trainer.runs == [] and trainer.training() == []


def test_a_full_models_folder_refuses_a_new_run_with_a_sentence(trainer, data, monkeypatch):
    folder = Path(trainer.models_dir)
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"m{i}.pt").write_bytes(b"x")
    monkeypatch.setenv("MLP_MAX_MODELS", "3")
    with pytest.raises(ModelFileError, match=r"The models folder is full \(3 models"):
        trainer.start(Recipe(**QUICK), data=data)
    assert trainer.runs == []


def test_runs_with_the_same_name_never_overwrite_each_other(trainer, data):
    outs = []
    for _ in range(2):
        trainer.start(Recipe(**QUICK), data=data)
        snap = trainer.wait(60)
        assert snap.status == "finished", snap.message
        outs.append(snap.out)
    assert outs[0] != outs[1] and all(Path(o).exists() for o in outs)
    assert Path(outs[1]).stem == Path(outs[0]).stem + "-2"


def test_the_deepest_recipe_saves_under_a_short_name(trainer, data):
    deep = Recipe(hidden=(8,) * MAX_HIDDEN_LAYERS, batch_size=60, epochs=1, augment=False)
    trainer.start(deep, data=data)
    snap = trainer.wait(60)
    assert snap.status == "finished", snap.message
    assert (
        len(Path(snap.out).name) <= 120 and load_checkpoint(snap.out).recipe.hidden == deep.hidden
    )


def test_one_learning_rate_scan_at_a_time_even_beside_a_run(trainer, data, monkeypatch):
    import mlp_core.service.jobs as jobs

    inside, release = threading.Event(), threading.Event()
    real = jobs.lr_find

    def slow_find(learn, **kw):  # hold the scan until the test has tried a second one
        inside.set()
        release.wait(10)
        return real(learn, **kw)

    monkeypatch.setattr(jobs, "lr_find", slow_find)
    run = trainer.start(Recipe(**QUICK), data=data, cbs=[Slow(0.01)])
    found = []
    t = threading.Thread(target=lambda: found.append(trainer.lr_find(Recipe(**QUICK), data)))
    t.start()
    assert inside.wait(10)
    with pytest.raises(JobBusyError, match="Another learning-rate scan is running"):
        trainer.lr_find(Recipe(**QUICK), data)
    release.set()
    t.join(30)
    assert found and found[0].lrs and run.join(30) and run.status == "finished"


def test_a_long_runs_snapshot_stays_small(trainer, data, monkeypatch):
    # a run's loss history capped at 64 points (4,096 when served): 600 images in batches of
    # 6 for 3 epochs are 300 losses, over four times the cap, as 7,200 would be for 4,096
    from mlp_core.service import jobs

    monkeypatch.setattr(jobs, "LossHistory", functools.partial(jobs.LossHistory, cap=64))
    trainer.start(Recipe(hidden=(8,), batch_size=6, epochs=3, lr=0.001, augment=False), data=data)
    snap = trainer.wait(300)
    assert snap.status == "finished", snap.message
    assert snap.step == 300 and len(snap.losses) == len(snap.loss_steps) <= 64
    assert snap.loss_steps[-1] == 300


@pytest.mark.parametrize("device", ["../../etc", "cuda:7", "nonsense"])
def test_a_device_this_machine_lacks_is_one_sentence_and_starts_nothing(trainer, data, device):
    with pytest.raises(DeviceError, match="not"):
        trainer.start(Recipe(**QUICK, device=device), data=data)
    with pytest.raises(DeviceError, match="not"):
        trainer.lr_find(Recipe(**QUICK, device=device), data)
    assert trainer.runs == []


def test_a_run_cancelled_while_its_device_frees_up_is_never_trained(trainer, data, monkeypatch):
    from mlp_core.service.jobs import Run

    real = Run.ended
    cancelling = threading.Event()

    def slow_cancel(self, status, *args):  # widen the window inside the cancel
        if status == "cancelled":
            cancelling.set()
            time.sleep(0.3)
        real(self, status, *args)

    monkeypatch.setattr(Run, "ended", slow_cancel)
    first = trainer.start(Recipe(**{**QUICK, "epochs": 50}), data=data, cbs=[Slow(0.01)], owner="a")
    second = trainer.start(Recipe(**QUICK), data=data, owner="a")
    wait_until_training(first, 2)
    cancel = threading.Thread(target=trainer.stop, args=(second.id, "a"))
    cancel.start()
    assert cancelling.wait(10)  # the cancel is under way: now the device frees up
    trainer.stop(first.id, owner="a")
    cancel.join(10)
    assert first.join(10) and first.status == "stopped"
    assert second.status == "cancelled"
    trainer.wait(10)
    assert not trainer.busy(), "the device was left taken"
    assert second.snapshot().step == 0, "a cancelled run trained"


def test_no_teacher_without_a_password_and_guessing_it_is_slowed(tmp_path, monkeypatch):
    monkeypatch.delenv("MLP_TEACHER_PASSWORD", raising=False)
    plain = Trainer(tmp_path / "a")
    assert not plain.has_teacher and not plain.is_teacher("")
    with pytest.raises(NotYoursError, match="This server has no teacher password."):
        plain.teacher_login("")
    guarded = Trainer(tmp_path / "b", teacher_password="s3cret")
    for guess in ["", "s3cre", "s3cret ", None, *map(str, range(6))]:  # 10 wrong ones
        with pytest.raises(NotYoursError, match="^That is not the teacher password.$"):
            guarded.teacher_login(guess)
    with pytest.raises(NotYoursError, match="Too many wrong passwords"):
        guarded.teacher_login("s3cret")  # even the right one, for a few seconds
    guarded._teacher_next_try = 0.0  # those seconds have passed
    token = guarded.teacher_login("s3cret")
    assert guarded.is_teacher(token) and not guarded.is_teacher(token[:-1] + "x")
    assert guarded.clear_queue(token) == 0 and guarded.who_queued(token) == []


def test_an_unwritable_or_full_models_folder_refuses_the_run_at_start(tmp_path, data, monkeypatch):
    """Found at Start, with a sentence, not when the finished run tries to save (and is lost).
    (Root writes through chmod, so the unwritable folder here is one that cannot be made.)"""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    unwritable = Trainer(blocker / "models")
    with pytest.raises(ModelFileError, match="^The models folder cannot be written") as e:
        unwritable.start(Recipe(**QUICK), data=data)
    assert str(e.value).count(".") == 1 and unwritable.runs == []
    full = Trainer(tmp_path / "models")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: types.SimpleNamespace(free=2**20))
    with pytest.raises(ModelFileError, match=r"^The disk of the models folder is full \(1 MB"):
        full.start(Recipe(**QUICK), data=data)
    assert full.runs == [] and not list((tmp_path / "models").iterdir())  # nothing left
    monkeypatch.undo()  # space freed: the next Start trains
    full.start(Recipe(**QUICK), data=data)
    assert full.wait(60).status == "finished"


def test_a_run_that_ended_while_the_disk_was_full_is_written_down_when_it_frees(
    tmp_path, data, monkeypatch
):
    """Never left "running" in the history: its end is written with the next write that
    works, and the Train page's sentence goes away with the problem."""
    from mlp_core.service.runstore import HistoryError, RunStore

    t = Trainer(tmp_path / "models", history=tmp_path / "runs.sqlite")
    real, full = RunStore.update_run, [True]

    def update_run(self, run_id, **changes):
        if full[0] and "ended" in changes:  # the disk fills up as the run ends
            raise HistoryError("The disk is full.")
        return real(self, run_id, **changes)

    monkeypatch.setattr(RunStore, "update_run", update_run)
    first = t.start(Recipe(**QUICK), data=data)
    assert t.wait(60).status == "finished"  # training goes on
    assert t.store.run(first.id).status == "running" and t.problem.startswith("The disk")
    full[0] = False  # space freed: the next write writes the first run's end too
    second = t.start(Recipe(**QUICK), data=data)
    assert t.store.run(first.id).status == "finished" and t.problem is None
    assert t.wait(60).status == "finished" and t.store.run(second.id).status == "finished"
    t.close()


def test_a_run_ended_while_the_disk_was_full_is_written_down_with_no_other_write(
    tmp_path, data, monkeypatch
):
    """Nobody starts another run: the end is tried again as the page asks for the
    problem, and the sentence goes when it is written."""
    from mlp_core.service import recorder
    from mlp_core.service.runstore import HistoryError, RunStore

    monkeypatch.setattr(recorder, "CHECK_SECONDS", 0.0)
    t = Trainer(tmp_path / "models", history=tmp_path / "runs.sqlite")
    real, full = RunStore.update_run, [True]

    def update_run(self, run_id, **changes):
        if full[0] and "ended" in changes:
            raise HistoryError("The disk is full.")
        return real(self, run_id, **changes)

    monkeypatch.setattr(RunStore, "update_run", update_run)
    run = t.start(Recipe(**QUICK), data=data)
    assert t.wait(60).status == "finished"
    assert t.problem.startswith("The disk")  # tried again as the page asks: still full
    assert t.problem.startswith("The disk") and t.store.run(run.id).status == "running"
    full[0] = False  # space freed; the page asks again
    assert t.problem is None and t.store.run(run.id).status == "finished"
    t.close()


def test_a_past_runs_curves_that_cannot_be_read_are_said_until_a_read_works(
    tmp_path, data, monkeypatch
):
    from mlp_core.service import recorder
    from mlp_core.service.runstore import HistoryError, RunStore

    path = tmp_path / "runs.sqlite"
    first = Trainer(tmp_path / "models", history=path)
    for _ in range(2):
        first.start(Recipe(**QUICK), data=data)
        assert first.wait(60).status == "finished"
    first.close()
    real, broken = RunStore.losses, [True]

    def losses(self, run_id):
        if broken[0]:
            raise HistoryError("The run history is damaged.")
        return real(self, run_id)

    monkeypatch.setattr(RunStore, "losses", losses)
    monkeypatch.setattr(recorder, "CHECK_SECONDS", 0.0)
    t = Trainer(tmp_path / "models", history=path)  # a restart: two past runs
    old, older = t.runs[-1], t.runs[-2]
    assert old.snapshot().losses == [] and "damaged" in t.problem
    assert "damaged" in t.problem  # said while nothing has been read since
    broken[0] = False
    assert older.snapshot().losses and t.problem is None  # a read worked: the sentence goes
    broken[0] = True
    monkeypatch.setattr(recorder, "NOTICE_SECONDS", -1.0)  # shown until a second ago
    t.runs[-1]._restore = t.history.curves(old.id)  # read again, fails again
    assert old.snapshot().losses == []
    assert t.problem is None  # a notice: its time is up at the next check
    t.close()


def test_a_history_deleted_under_the_server_is_written_again_and_said_once(
    tmp_path, data, monkeypatch, caplog
):
    from mlp_core.service import recorder
    from mlp_core.service.runstore import RunStore

    monkeypatch.setattr(recorder, "CHECK_SECONDS", 0.0)
    path = tmp_path / "runs.sqlite"
    t = Trainer(tmp_path / "models", history=path)
    first = t.start(Recipe(**QUICK), data=data)
    assert t.wait(60).status == "finished" and t.problem is None
    path.unlink()
    with caplog.at_level("WARNING", logger=recorder.__name__):
        said = [t.problem for _ in range(3)]
    assert said[0] == said[2] and "was deleted while the server ran" in said[0], said
    assert len(caplog.records) == 1  # logged once
    second = t.start(Recipe(**QUICK), data=data)  # written to the new file
    assert t.wait(60).status == "finished"
    t.close()
    store = RunStore(path)
    assert [(r.id, r.status) for r in store.runs()] == [
        (first.id, "finished"), (second.id, "finished")
    ]  # fmt: skip
    store.close()


def test_a_history_replaced_under_the_server_is_left_alone_and_said_once(
    tmp_path, data, monkeypatch, caplog
):
    from mlp_core.service import recorder
    from mlp_core.service.runstore import RunStore

    monkeypatch.setattr(recorder, "CHECK_SECONDS", 0.0)
    path, restored = tmp_path / "runs.sqlite", tmp_path / "restored.sqlite"
    t = Trainer(tmp_path / "models", history=path)
    t.start(Recipe(**QUICK), data=data)
    assert t.wait(60).status == "finished"
    RunStore(restored).close()
    restored.replace(path)  # e.g. a copy put back by hand
    with caplog.at_level("WARNING", logger=recorder.__name__):
        said = [t.problem for _ in range(3)]
    assert said[0] == said[2] and "was replaced by another" in said[0], said
    assert len(caplog.records) == 1
    t.close()
    store = RunStore(path)
    assert store.runs() == []  # the file put there is not written over
    store.close()
