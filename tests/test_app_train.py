"""The Train page under AppTest on tiny synthetic MNIST: the form, runs live and finished,
faults (crashes, nonsense recipes, typed model names), the finder, the templates.

(The jobs themselves: test_jobs.py.)
"""

import re
import time
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df as arrow_to_pandas
from streamlit.testing.v1 import AppTest

import mlp_core.service.jobs
import ui
from conftest import (
    DASHBOARD,
    TRAIN,
    Raise,
    chart_data,
    open_page,
    shown,
    start,
    texts,
    wait_until_training,
)
from mlp_core import Recipe, load_checkpoint
from mlp_core.recipe import FORM
from mlp_core.service.trainer import NotYoursError
from ui.server import owner_of

# ~6M weights in batches of 4: an epoch takes many seconds, long enough to act during a run
SLOW = dict(hidden="2048, 2048", batch_size=4, epochs=3)
QUICK = dict(hidden="32", batch_size=60, epochs=2, augment=False)  # 600 images: ~1 s a run
LONG = dict(hidden="2048, 2048", batch_size=4, epochs=20)  # long enough to act during it


def test_the_overview_and_train_pages_render(app):
    import ui

    assert texts(app.title) == ["Train a network"]
    assert "steps 2–5 of learning" in app.markdown[0].value
    shipped = ui.load_model(ui.DEFAULT_MODEL).recipe  # the form starts from its recipe
    assert app.text_input(key="train_hidden").value == ", ".join(map(str, shipped.hidden))
    assert app.number_input(key="train_epochs").value == shipped.epochs
    assert app.number_input(key="train_lr").value == shipped.lr
    assert app.selectbox(key="train_optimizer").value == shipped.optimizer
    assert app.checkbox(key="train_augment").value == shipped.augment
    assert app.checkbox(key="train_strokes").value == shipped.strokes
    assert app.selectbox(key="train_device").options[0] == "cpu"
    assert not app.button(key="train_start").proto.disabled
    assert texts(app.info) == [
        "No run on this server yet: fill in the recipe and press Start training."
    ]
    app.switch_page("app_pages/overview.py").run()
    assert not app.exception
    assert texts(app.title) == ["Teach a network to read handwritten digits"]


def test_the_form_trains_on_mnist_alone_though_the_shipped_model_learnt_cut_digits(app):
    import ui

    n = ui.load_model(ui.DEFAULT_MODEL).recipe.cut_numbers
    assert n > 0  # the form starts from it, and says what it leaves out
    said = f"Numbers cut into digits: {n:,} in the recipe this form starts from. Only the "
    assert [c.value for c in app.caption if c.value.startswith(said)] == [
        f"{said}command line does that (`python -m mlp_core train --cut-numbers {n}`): this "
        "form trains with 0."
    ]
    start(app, **QUICK)
    assert not app.exception and not app.error
    job = ui.trainer().current
    assert job is not None and job.snapshot().recipe.cut_numbers == 0
    assert job.join(60) and job.snapshot().status == "finished"


def test_start_returns_at_once_shows_progress_and_stop_ends_the_run(app):
    start(app, **SLOW)
    assert not app.exception
    job = ui.trainer().current
    assert job is not None and job.snapshot().active, "the page waited for the run to end"
    deadline = time.monotonic() + 30
    while job.snapshot().step < 2:
        assert time.monotonic() < deadline, job.snapshot().message
        time.sleep(0.05)
    app.run()
    assert not app.exception
    (bar,) = app.main.get("progress")
    assert bar.proto.text == "Epoch 1/3"
    metrics = {m.label: m.value for m in app.metric}
    assert re.fullmatch(r"\d+ / 450", metrics["Batches"]) and int(metrics["Batches"][0]) >= 2
    assert set(metrics) == {"Batches", "Images per second", "Elapsed", "Time left"}
    assert app.get("vega_lite_chart"), "no live loss chart"

    app.button(key="train_stop").click().run()
    assert not app.exception
    assert job.join(10), "the run did not stop"
    assert job.snapshot().status == "stopped"
    app.run()
    assert not app.exception
    assert "Stopped before the first epoch ended; nothing was saved." in texts(app.info)
    assert not app.get("progress") and "train_stop" not in [b.key for b in app.button]


def test_a_second_start_during_a_run_waits_in_line_and_can_be_cancelled(app):
    start(app, **SLOW)
    start(app, **QUICK)
    assert not app.exception and not app.error
    first, second = ui.trainer().runs
    assert first.status in ("starting", "running") and second.status == "queued"
    wait_until_training(first)
    app.run()
    queue = app.dataframe[0].value  # "Training now on this server"
    assert queue["run"].tolist() == [first.id, second.id]
    assert re.fullmatch(r"training: \d+%, .+ left", queue["state"][0]), queue["state"][0]
    assert re.fullmatch(r"waiting: number 1 in line on cpu, starts in about .+", queue["state"][1])
    assert queue["started by"].tolist() == ["you", "you"]
    app.button(key=f"train_cancel_{second.id}").click().run()
    assert not app.exception and second.status == "cancelled"
    app.button(key="train_stop").click().run()
    assert first.join(30) and first.status == "stopped"


def test_a_second_browser_sees_the_run_but_cannot_stop_or_cancel_it(app):
    start(app, **SLOW)
    start(app, **QUICK)
    first, second = ui.trainer().runs
    other = open_page(TRAIN, timeout=30)  # another browser: its own session, its own token
    assert not other.exception
    assert other.dataframe[0].value["started by"].tolist() == ["another browser"] * 2
    keys = [b.key for b in other.button]
    assert "train_stop" not in keys and not any(k.startswith("train_cancel") for k in keys)
    # a forged Stop or Cancel (for buttons this browser was never shown) is refused again
    # by the trainer, which checks the asking browser's token
    for run in (first, second):
        with pytest.raises(NotYoursError):
            ui.trainer().stop(run.id, owner=owner_of(other.session_state["browser_token"]))
    assert first.status in ("starting", "running") and second.status == "queued"
    wait_until_training(first)
    app.run().button(key="train_stop").click().run()  # its own browser can
    assert first.join(30) and first.status == "stopped"


def test_a_finished_run_shows_accuracy_saves_the_model_and_can_become_active(app, tmp_path):
    start(app, epochs=2)
    snap = ui.trainer().wait(60)
    assert snap.status == "finished"
    app.run()
    assert not app.exception
    assert re.fullmatch(r"Test accuracy: \d\.\d{4}", app.success[0].value)
    assert app.success[0].value == f"Test accuracy: {snap.test_accuracy:.4f}"
    out = Path(snap.out)
    assert out.parent == tmp_path and out.exists()
    assert any(out.name in m.value for m in app.markdown)
    assert app.get("download_button")[0].label == "Download the model file"
    runs = app.dataframe[0].value
    assert runs[["run", "status", "epochs"]].values.tolist() == [[snap.id, "finished", "2/2"]]
    assert runs["test accuracy"][0] == snap.test_accuracy

    app.button(key="train_use").click().run()
    assert not app.exception
    assert app.session_state["active_model"] == Path(snap.out).stem
    # (AppTest drops the sidebar's elements after switch_page, so check the page's own note)
    assert "This is the active model: the Samples and Predict pages use it." in texts(app.caption)
    assert "train_use" not in [b.key for b in app.button]


def test_other_pages_show_a_running_jobs_progress_in_the_sidebar_and_train_does_not(app):
    start(app, **SLOW)
    sidebar = AppTest.from_file(DASHBOARD, default_timeout=30).run().sidebar  # Overview
    (bar,) = sidebar.get("progress")
    assert re.fullmatch(r"Epoch [123]/3 when this page opened", bar.proto.text), bar.proto.text
    assert [link.proto.label for link in sidebar.get("page_link")] == ["Follow it live"]
    assert not app.run().sidebar.get("progress")  # the Train page shows the run live instead


def test_earlier_runs_are_listed_and_their_loss_curves_overlaid(app):
    for lr in (0.01, 0.003):
        start(app, hidden="32", lr=lr, epochs=2, batch_size=60, augment=False)
        assert ui.trainer().wait(60).status == "finished"
    app.run()
    assert not app.exception
    runs = app.dataframe[0].value
    assert runs["recipe"].tolist() == ["32 adam lr0.003 bs60 2ep", "32 adam lr0.01 bs60 2ep"]
    compared = charts(app, "Loss of each run")[0]  # the runs' table's chart; then the comparison
    (data,) = [arrow_to_pandas(d.data.data) for d in compared.proto.datasets]
    first, second = (job.id for job in ui.trainer().runs)  # ids count up across the process
    assert set(data["run"]) == {
        f"#{first} 32 adam lr0.01 bs60 2ep",
        f"#{second} 32 adam lr0.003 bs60 2ep",
    }
    assert data.groupby("run")["epoch"].max().tolist() == [2.0, 2.0]  # x: epochs, not batches


def test_a_diverging_recipe_shows_diverged_and_a_hint(app):
    start(app, lr=1e6, epochs=1)
    assert ui.trainer().wait(60).status == "diverged"
    app.run()
    assert not app.exception
    (error,) = app.error
    assert error.value.startswith("Training diverged: the loss became")
    assert any("Lower it, e.g. to 100000" in i.value for i in app.info)


@pytest.mark.parametrize(
    "fields, sentence",
    [
        (dict(epochs=0), "Epochs must be a whole number of at least 1, got 0."),
        (dict(hidden="a,b"), "Hidden layer sizes must be whole numbers separated by commas"),
        (dict(lr=-1.0), "Learning rate must be a positive number, got -1.0."),
    ],
)
def test_an_invalid_recipe_shows_one_sentence_and_starts_nothing(app, fields, sentence):
    start(app, **fields)
    assert not app.exception
    (error,) = app.error
    assert error.value.startswith(sentence)
    assert ui.trainer().runs == []


def test_without_mnist_start_is_disabled_and_the_app_still_works(app, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_ROOT", str(tmp_path / "nowhere"))
    app.run()
    assert not app.exception
    (warning,) = app.warning
    assert warning.value.startswith("MNIST is not on this server")
    assert app.button(key="train_start").proto.disabled
    app.switch_page("app_pages/overview.py").run()
    assert not app.exception


def test_the_form_and_the_cli_explain_each_field_in_the_same_words(app):
    from mlp_core.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {a.dest: a.help.replace("%%", "%") for a in train._actions if a.help}  # % templates
    for f in fields(Recipe):
        if f.name not in FORM:  # the command line's only
            assert f.name in flags and f"train_{f.name}" not in [w.key for w in app.main]
            continue
        widget = app.get_by_key(f"train_{f.name}")
        assert widget.label == f.metadata["label"], f.name
        assert widget.help == f.metadata["help"], f.name
        assert flags[f.name].startswith(widget.help + " (default: "), f.name


# -- faults ----------------------------------------------------------------------------------


@pytest.fixture
def thread_worker(monkeypatch):
    """The dashboard's runs train in threads of this process (MLP_WORKER=thread): what the
    test patches or reads of the loop is the loop itself, not a copy sent down a pipe."""
    monkeypatch.setenv("MLP_WORKER", "thread")
    ui.trainer().close()  # the page made one with worker processes; none started yet
    ui.trainer.clear()


@pytest.fixture
def crash_next_run(monkeypatch, thread_worker):
    """crash_next_run(error): the next run the dashboard starts raises `error` mid-epoch.

    The crash is patched into this process (thread_worker); test_worker.py crashes a real
    worker process."""

    def arm(error: BaseException) -> None:
        real = mlp_core.service.jobs.build_learner

        def build(recipe, train, test=None, cbs=(), **kw):
            monkeypatch.setattr(mlp_core.service.jobs, "build_learner", real)  # this run only
            return real(recipe, train, test, [*cbs, Raise(error)], **kw)

        monkeypatch.setattr(mlp_core.service.jobs, "build_learner", build)

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
    assert snap.status == "failed" and ui.trainer().training() == []  # the device is free
    app.run()
    assert not app.exception
    assert texts(app.error) == [sentence]
    start(app, **QUICK)  # the next run starts and finishes
    assert not app.exception and not app.error
    assert ui.trainer().wait(60).status == "finished"
    app.run()
    assert app.success[0].value.startswith("Test accuracy: ")
    assert [j.snapshot().status for j in ui.trainer().runs] == ["failed", "finished"]


def test_stop_during_an_epoch_leaves_an_app_that_trains_again(app, thread_worker):
    # in a thread, the run's step is the loop's own (a worker sends it every 0.1 s: stale)
    start(app, **LONG)
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
    assert ui.trainer().runs == []


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


def charts(at, title: str) -> list:
    return [c for c in at.get("vega_lite_chart") if title in c.proto.spec]


def grid_image(at):
    """The grid of first-layer templates (the image whose caption starts with 'Run ')."""
    (img,) = [i for i in at.image if i.captions[0].startswith("Run ")]
    return img


# -- templates, norms, augmentation, the learning-rate finder --------------------------------


def test_a_run_shows_its_templates_and_each_layers_norms(app):
    at = app
    fields = dict(hidden="128, 32", epochs=2, batch_size=60, augment=False)
    for name, value in fields.items():
        at.get_by_key(f"train_{name}").set_value(value)
    at.button(key="train_start").click().run()
    snap = ui.trainer().wait(60)
    assert snap.status == "finished"
    at.run()
    assert not at.exception
    assert "#### What the first layer is learning" in [m.value for m in at.markdown]
    img = grid_image(at)
    assert img.captions == [f"Run {snap.id}: the first 32 of 128 units, after batch 20 of 20"]
    assert at.select_slider(key="train_units").value == 32

    (weight,) = charts(at, "Size of each layer's weights")
    (grad,) = charts(at, "Size of its gradients")
    for chart, metric in ((weight, "weight norm"), (grad, "grad norm")):
        df = chart_data(chart)
        assert sorted(set(df["epoch"])) == [1, 2]
        assert df["layer"].tolist() == ["784→128", "128→32", "32→10"] * 2
        assert df[metric].tolist() == [n[metric] for n in snap.extras["norms"]]
        assert (df[metric] > 0).all()

    at.select_slider(key="train_units").set_value(64).run()
    assert not at.exception
    assert grid_image(at).captions[0].startswith(f"Run {snap.id}: the first 64 of 128 units")
    assert grid_image(at).value != img.value  # another picture


def test_the_augmentation_preview_draws_new_warps_on_request(app):
    at = app

    def preview():
        (exp,) = [e for e in at.expander if e.label.startswith("What does augmenting do")]
        return exp

    originals, warps, strokes = preview().image
    assert warps.captions[0].startswith("Three random warps of each")
    assert strokes.captions[0] == "Thicker strokes: the upright ones, then the level ones"
    assert any("another 15% their level ones" in c.value for c in preview().caption)
    preview().button[0].click().run()
    assert not at.exception
    again = preview().image
    assert again[0].value == originals.value and again[1].value != warps.value
    assert again[2].value == strokes.value  # thicker strokes are not drawn at random here


def test_the_lr_finder_plots_suggests_and_puts_its_rate_into_the_form(app):
    at = app
    at.text_input(key="train_hidden").set_value("64")
    at.number_input(key="train_batch_size").set_value(20)
    at.button(key="train_find").click().run()
    assert not at.exception and not at.error
    assert ui.trainer().runs == []  # nothing trained, nothing saved

    (chart,) = charts(at, "Loss while the learning rate grows")
    spec = chart.proto.spec
    assert '"type": "log"' in spec or '"type":"log"' in spec
    curve = chart_data(chart)
    lrs = curve["learning rate"].tolist()
    assert lrs == sorted(lrs) and lrs[0] == pytest.approx(1e-6) and len(lrs) >= 50
    assert curve["loss"].notna().all()

    (line,) = [m.value for m in at.markdown if m.value.startswith("#### Suggested learning rate")]
    suggestion = float(line.rpartition(" ")[2])
    assert lrs[0] <= suggestion <= lrs[-1]
    found = at.session_state["train_lrfind"]["result"]
    assert suggestion == float(f"{found.suggestion:.2g}")
    marks = chart_data(chart, 1)
    assert marks["learning rate"].tolist()[0] == suggestion  # drawn on the chart
    assert any("Scanned for 64, adam, batch 20" in c.value for c in at.caption)

    assert at.number_input(key="train_lr").value != suggestion
    at.button(key="train_use_lr").click().run()
    assert not at.exception
    assert at.number_input(key="train_lr").value == suggestion
    assert "train_use_lr" not in [b.key for b in at.button]
    assert any("The form uses this learning rate" in c.value for c in at.caption)

    # Start now trains with it, and the other fields are still the scanned ones
    at.number_input(key="train_epochs").set_value(1)
    at.button(key="train_start").click().run()
    job = ui.trainer().current
    assert job is not None and job.recipe.lr == suggestion
    assert job.recipe.hidden == (64,) and job.recipe.batch_size == 20


def test_the_lr_finder_is_refused_without_mnist(app, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_ROOT", str(tmp_path / "nowhere"))
    at = app.run()
    assert not at.exception
    assert at.warning[0].value.startswith("MNIST is not on this server")
    assert at.button(key="train_find").proto.disabled
    assert not [e for e in at.expander if e.label.startswith("What does augmenting do")]


def test_markup_in_the_hidden_sizes_is_shown_as_text(tiny_mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_ROOT", str(tiny_mnist))
    at = open_page(TRAIN)
    at.text_input(key="train_hidden").set_value("**bold** ![x](http://evil.example/a.png)")
    at.button(key="train_start").click().run()
    assert not at.exception
    (error,) = at.error
    assert "\\*\\*bold\\*\\*" in error.value and "]\\(" in error.value
    assert "**bold** ![x](http:" in shown(error.value)


# -- the run history -------------------------------------------------------------------------


def test_a_damaged_history_file_is_one_sentence_and_training_still_works(tiny_mnist, monkeypatch):
    import os

    history = Path(os.environ["MLP_HISTORY"])
    history.write_bytes(b"not a database, " * 512)
    monkeypatch.setenv("MNIST_ROOT", str(tiny_mnist))
    app = open_page(TRAIN, timeout=30)
    (warning,) = texts(app.warning)
    assert warning.startswith("The run history file is damaged") and "/" not in warning
    assert "Training still works" in warning
    start(app, **QUICK)
    assert not app.exception and ui.trainer().wait(60).status == "finished"
    app.run()
    assert app.dataframe[0].value["status"].tolist() == ["finished"]  # kept in memory
    assert history.read_bytes() == b"not a database, " * 512  # left as it was found


def test_a_history_locked_mid_run_is_one_sentence_and_the_run_is_not_lost(app):
    import os
    import sqlite3

    ui.trainer().store._db.execute("PRAGMA busy_timeout = 100")
    start(app, **SLOW)
    run = ui.trainer().current
    wait_until_training(run)
    other = sqlite3.connect(os.environ["MLP_HISTORY"])
    other.execute("BEGIN EXCLUSIVE")  # another program holds the file
    try:
        wait_until_training(run, steps=run.snapshot().step + 20)
        app.run()
        (warning,) = texts(app.warning)
        assert warning.startswith("The run history is locked by another program")
    finally:
        other.rollback()
        other.close()
    app.button(key="train_stop").click().run()
    assert run.join(30) and run.status == "stopped"
    snap = run.snapshot()
    assert snap.step == len(snap.losses) > 20  # every loss kept for the page


def test_the_teacher_stops_cancels_deletes_and_clears_any_run_and_a_student_cannot(
    tiny_mnist, monkeypatch
):
    """The teacher's password (compared by the trainer) buys a pass the trainer checks on
    every teacher's action; a student who forges the pass, a widget or the password gets
    one sentence and changes nothing."""
    monkeypatch.setenv("MNIST_ROOT", str(tiny_mnist))
    monkeypatch.setenv("MLP_TEACHER_PASSWORD", "correct horse")
    student = open_page(TRAIN, timeout=30)
    trainer = ui.trainer()
    quick = Recipe(hidden=(32,), batch_size=60, epochs=2, augment=False)
    done = trainer.start(quick, owner="a" * 32, address="10.0.0.1")
    assert trainer.wait(60).status == "finished"
    busy = trainer.start(Recipe(hidden=(2048, 2048), batch_size=4, epochs=20), owner="b" * 32,
                         address="10.0.0.2")  # fmt: skip
    waiting = trainer.start(quick, owner="c" * 32, address="10.0.0.3")
    wait_until_training(busy, 2)

    # a student: a forged pass in the session, a forged widget value, a wrong password
    forged = "f" * 32
    student.session_state["teacher_pass"] = forged
    student.run()
    assert not student.exception
    assert not student.button(key="teacher_unlock").proto.disabled  # still locked
    assert not [b for b in student.button if b.key in ("teacher_clear", "teacher_delete")]
    student.text_input(key="teacher_password").set_value("wrong").run()
    student.button(key="teacher_unlock").click().run()
    assert texts(student.error) == ["That is not the teacher password."]
    assert student.session_state["teacher_password"] == ""  # the field is emptied
    for action in (lambda: trainer.clear_queue(forged), lambda: trainer.who_queued(None),
                   lambda: trainer.stop(busy.id, owner="s" * 32, teacher=forged),
                   lambda: trainer.delete(done.id, owner="s" * 32, teacher=forged)):  # fmt: skip
        with pytest.raises(NotYoursError):
            action()
    assert busy.status == "running" and waiting.status == "queued" and trainer.get(done.id)

    # the teacher
    teacher = open_page(TRAIN, timeout=30)
    teacher.text_input(key="teacher_password").set_value("correct horse")
    teacher.button(key="teacher_unlock").click().run()
    assert not teacher.exception and teacher.session_state["teacher_password"] == ""
    (who,) = [d.value for d in teacher.dataframe if "address" in d.value.columns]
    assert who["address"].tolist() == ["10.0.0.2", "10.0.0.3"]
    assert who["browser"].tolist() == ["b" * 8, "c" * 8]
    teacher.button(key="teacher_clear").click().run()
    assert waiting.status == "cancelled"
    teacher.selectbox(key="teacher_pick").set_value(busy.id).run()
    teacher.button(key="teacher_stop").click().run()
    assert busy.join(30) and busy.status == "stopped"
    teacher.selectbox(key="teacher_pick").set_value(done.id).run()
    teacher.button(key="teacher_delete").click().run()
    assert not teacher.exception and trainer.get(done.id) is None
    assert not Path(done.snapshot().out).exists()
