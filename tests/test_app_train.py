"""The Train page, driven through the real dashboard with Streamlit's AppTest on tiny MNIST."""

import re
import time
from dataclasses import fields
from pathlib import Path

import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df as arrow_to_pandas
from streamlit.testing.v1 import AppTest

import ui
from conftest import DASHBOARD, start, texts
from mlp_core import Recipe

# ~6M weights in batches of 4: an epoch takes many seconds, long enough to act during a run
SLOW = dict(hidden="2048, 2048", batch_size=4, epochs=3)


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
    assert app.selectbox(key="train_device").options[0] == "cpu"
    assert not app.button(key="train_start").proto.disabled
    assert texts(app.info) == [
        "No run on this server yet: fill in the recipe and press Start training."
    ]
    app.switch_page("app_pages/overview.py").run()
    assert not app.exception
    assert texts(app.title) == ["Teach a network to read handwritten digits"]


def test_start_returns_at_once_shows_progress_and_stop_ends_the_run(app):
    began = time.monotonic()
    start(app, **SLOW)
    took = time.monotonic() - began
    assert not app.exception
    job = ui.trainer().current
    assert job is not None and job.snapshot().active, "the page waited for the run to end"
    assert took < 10
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


def test_a_second_start_during_a_run_is_refused(app):
    start(app, **SLOW)
    start(app)
    assert not app.exception
    assert texts(app.error) == [
        "A training run is already going on this server; wait for it to end or stop it."
    ]
    assert len(ui.trainer().jobs) == 1 and ui.trainer().active() is not None


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
    loss, accuracy, *_norms, compared = app.get("vega_lite_chart")
    assert "Loss of each run" in compared.proto.spec
    (data,) = [arrow_to_pandas(d.data.data) for d in compared.proto.datasets]
    first, second = (job.id for job in ui.trainer().jobs)  # ids count up across the process
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
        (dict(hidden=""), "Give at least one hidden layer size, like 256, 64."),
        (dict(lr=-1.0), "Learning rate must be a positive number, got -1.0."),
    ],
)
def test_an_invalid_recipe_shows_one_sentence_and_starts_nothing(app, fields, sentence):
    start(app, **fields)
    assert not app.exception
    (error,) = app.error
    assert error.value.startswith(sentence)
    assert ui.trainer().jobs == []


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
    flags = {a.dest: a.help for a in train._actions}
    for f in fields(Recipe):
        widget = app.get_by_key(f"train_{f.name}")
        assert widget.label == f.metadata["label"], f.name
        assert widget.help == f.metadata["help"], f.name
        assert flags[f.name].startswith(widget.help + " (default: "), f.name
