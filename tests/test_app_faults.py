"""Faults on the dashboard: a run that crashes or runs out of memory, nonsense recipes, user-typed
model names, and predictions made while a run trains. AppTest on tiny synthetic MNIST.

(The jobs themselves: test_jobs.py; the Train page's normal life: test_app_train.py.)
"""

import time
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import mlp_core.jobs
import ui
from conftest import Raise, seven_png, shown, start, texts
from mlp_core import load_checkpoint
from mlp_core.metrics import predict_probs
from mlp_core.preprocess import preprocess

QUICK = dict(hidden="32", batch_size=60, epochs=2, augment=False)  # 600 images: ~1 s a run
SLOW = dict(hidden="2048, 2048", batch_size=4, epochs=20)  # long enough to act during it


@pytest.fixture
def crash_next_run(monkeypatch):
    """crash_next_run(error): the next run the dashboard starts raises `error` mid-epoch."""

    def arm(error: BaseException) -> None:
        real = mlp_core.jobs.build_learner

        def build(recipe, train, test=None, cbs=()):
            monkeypatch.setattr(mlp_core.jobs, "build_learner", real)  # this run only
            return real(recipe, train, test, [*cbs, Raise(error)])

        monkeypatch.setattr(mlp_core.jobs, "build_learner", build)

    return arm


@pytest.mark.parametrize(
    "error, sentence",
    [
        (RuntimeError("disk on fire"), "The run failed: RuntimeError: disk on fire"),
        (
            torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
            "The run failed: CUDA ran out of memory: try a smaller batch size or hidden "
            "layers, or the CPU.",
        ),
    ],
    ids=["exception", "cuda-oom"],
)
def test_a_crash_in_the_run_fails_it_with_its_sentence_and_the_app_keeps_serving(
    app, crash_next_run, error, sentence
):
    crash_next_run(error)
    start(app, **QUICK)
    snap = ui.trainer().wait(60)
    assert snap.status == "failed" and ui.trainer().active() is None  # the slot is free
    app.run()
    assert not app.exception
    assert texts(app.error) == [sentence]
    start(app, **QUICK)  # the next run starts and finishes
    assert not app.exception and not app.error
    assert ui.trainer().wait(60).status == "finished"
    app.run()
    assert app.success[0].value.startswith("Test accuracy: ")
    assert [j.snapshot().status for j in ui.trainer().jobs] == ["failed", "finished"]


def test_stop_during_an_epoch_leaves_an_app_that_trains_again(app):
    start(app, **SLOW)
    job = ui.trainer().current
    deadline = time.monotonic() + 30
    while job.snapshot().step < 3:
        assert time.monotonic() < deadline, job.snapshot().message
        time.sleep(0.02)
    app.run()
    app.button(key="train_stop").click().run()
    at_request = job.snapshot().step
    assert job.join(10) and job.snapshot().status == "stopped"
    assert job.snapshot().step <= at_request + 1  # within one batch
    start(app, **QUICK)
    assert not app.exception and ui.trainer().wait(60).status == "finished"


@pytest.mark.parametrize(
    "fields, sentence",
    [
        (dict(epochs=-3), "Epochs must be a whole number of at least 1, got -3."),
        (dict(hidden="0, 5"), "Hidden sizes must be positive whole numbers, got (0, 5)."),
        (dict(hidden="-64"), "Hidden sizes must be positive whole numbers, got (-64,)."),
        (dict(hidden="1.5, 64"), "Hidden layer sizes must be whole numbers separated by commas"),
        (dict(batch_size=0), "Batch size must be a whole number of at least 1, got 0."),
        (dict(batch_size=601), "Batch size 601 is larger than the 600 training images."),
    ],
)
def test_nonsense_recipe_fields_show_one_sentence_and_start_nothing(app, fields, sentence):
    start(app, **{**QUICK, **fields})
    assert not app.exception
    assert [e.startswith(sentence) for e in texts(app.error)] == [True], texts(app.error)
    assert ui.trainer().jobs == []


def test_a_typed_model_name_cannot_leave_models_or_replace_a_model(app, tmp_path):
    start(app, **QUICK)
    snap = ui.trainer().wait(60)
    assert snap.status == "finished"
    app.run()

    def save_as(name: str) -> AppTest:
        app.text_input(key="train_save_name").set_value(name)
        return app.button(key="train_save_as").click().run()

    save_as("../../outside/my model?")
    assert not app.exception and not app.error
    saved = tmp_path / "my_model_.pt"
    assert texts(app.success)[-1] == f"Saved a copy as `models/{saved.name}`"
    assert load_checkpoint(saved).test_accuracy == snap.test_accuracy
    first = saved.read_bytes()
    save_as("/etc/passwd")
    assert (tmp_path / "passwd.pt").exists()
    save_as("my model?")  # the same name, typed another way: refused, the first one kept
    assert [shown(e) for e in texts(app.error)] == [
        "A model named my_model_ already exists; choose another name."
    ]
    assert saved.read_bytes() == first
    save_as("")
    assert texts(app.error) == ["Type a name for the model first."]
    assert not app.exception
    # everything landed in models/ (here tmp_path), nothing beside or above it
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [Path(snap.out).name, "my_model_.pt", "passwd.pt"]
    )
    assert not (tmp_path.parent.parent / "outside").exists()
    assert not Path("/etc/passwd.pt").exists()


def test_predictions_while_a_run_trains_are_the_same_twenty_times(app, report):
    start(app, **SLOW)
    job = ui.trainer().current
    app.switch_page("app_pages/predict.py").run()
    app.file_uploader(key="predict_files").set_value(("7.png", seven_png(), "image/png"))
    answers, steps = [], []
    for _ in range(20):
        app.run()
        assert not app.exception
        line = [m.value for m in app.markdown if "Prediction:" in m.value]
        answers.append((line, [c.proto.spec for c in app.get("vega_lite_chart")]))
        steps.append(job.snapshot().step)
    assert job.snapshot().active and steps[-1] > steps[0], "the run was not training meanwhile"
    assert all(a == answers[0] for a in answers), "an answer changed while the run trained"
    probs = predict_probs(load_checkpoint(ui.DEFAULT_MODEL).model, preprocess(seven_png()).tensor)
    assert answers[0][0] == [f"#### {ui.prediction_line(probs[0].numpy())}"]
    report(f"20 answers while the run went from batch {steps[0]} to {steps[-1]}: all the same")
