"""The Train page's "Start from" lessons and its link: a recipe in the URL fills the form."""

from dataclasses import replace

import pytest
from streamlit.testing.v1 import AppTest

import ui
from conftest import DASHBOARD, TRAIN, texts
from mlp_core import Recipe
from mlp_core.recipe import LINKED, to_query
from mlp_core.teach.lessons import BY_KEY, LESSONS
from ui.recipe_form import parse_hidden

ODD = Recipe(
    hidden=(33, 7), init="notebook", optimizer="sgd", lr=0.0123456789, schedule="constant",
    momentum=0.85, weight_decay=0.000321, batch_size=17, epochs=3, seed=42, augment=False,
)  # fmt: skip


def open_link(params: dict, tiny_mnist, monkeypatch) -> AppTest:
    """The Train page opened from a link carrying `params`."""
    monkeypatch.setenv("MNIST_ROOT", str(tiny_mnist))
    at = AppTest.from_file(DASHBOARD, default_timeout=30)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    at.switch_page(TRAIN).run()
    assert not at.exception
    return at


def form(at) -> Recipe:
    """The recipe the form's widgets show (the device left at its default)."""
    got = {name: at.get_by_key(f"train_{name}").value for name in LINKED}
    got["hidden"] = parse_hidden(got["hidden"])
    return replace(Recipe(), **got)


def link(at) -> dict:
    """The page's query parameters, each one value."""
    return {k: v if isinstance(v, str) else v[-1] for k, v in at.query_params.items()}


def test_a_link_with_a_full_recipe_fills_the_form_and_runs_nothing(tiny_mnist, monkeypatch):
    at = open_link(to_query(ODD), tiny_mnist, monkeypatch)
    assert form(at) == replace(ODD, device=Recipe().device)
    assert not at.warning and ui.trainer().runs == []  # nothing runs before Start


def test_bad_and_unknown_values_get_defaults_and_one_sentence_naming_them(tiny_mnist, monkeypatch):
    shipped = ui.shipped_recipe()
    params = to_query(ODD) | {"lr": "nan", "epochs": "1e9", "hidden": "**x**", "evil": "1"}
    at = open_link(params, tiny_mnist, monkeypatch)
    got = form(at)
    assert (got.lr, got.epochs, got.hidden) == (shipped.lr, shipped.epochs, shipped.hidden)
    assert (got.batch_size, got.seed, got.momentum) == (17, 42, 0.85)  # the good ones kept
    (warning,) = texts(at.warning)
    assert warning == ui.plain(
        "This link's hidden, lr, epochs and evil could not be used: "
        "the form shows the defaults instead."
    )
    assert ui.trainer().runs == []


def test_a_link_with_numbers_past_2_to_the_53_keeps_the_page_working(tiny_mnist, monkeypatch):
    shipped = ui.shipped_recipe()
    params = to_query(ODD) | {"seed": str(2**53), "batch_size": str(2**63 - 1), "hidden": "-5-3"}
    at = open_link(params, tiny_mnist, monkeypatch)  # no "Something went wrong"
    got = form(at)
    assert (got.seed, got.batch_size, got.hidden) == (
        shipped.seed,
        shipped.batch_size,
        shipped.hidden,
    )
    assert got.epochs == ODD.epochs  # the good ones kept
    (warning,) = texts(at.warning)
    assert warning == ui.plain(
        "This link's hidden, batch_size and seed could not be used: "
        "the form shows the defaults instead."
    )
    assert at.button(key="train_start").label == "Start training"
    assert ui.trainer().runs == []


def test_a_lessons_link_fills_its_recipe_and_shows_its_text(tiny_mnist, monkeypatch):
    lesson = BY_KEY["lr-too-large"]
    at = open_link({"lesson": lesson.key}, tiny_mnist, monkeypatch)
    assert at.selectbox(key="train_lesson").value == lesson.key
    assert form(at) == replace(lesson.recipe, device=Recipe().device)
    assert lesson.text in texts(at.info)
    assert link(at) == {"lesson": lesson.key} | to_query(lesson.recipe)


def test_round_trip_form_to_link_to_form_is_exact(tiny_mnist, monkeypatch):
    at = open_link({}, tiny_mnist, monkeypatch)
    for name in LINKED:
        value = getattr(ODD, name)
        at.get_by_key(f"train_{name}").set_value(
            ", ".join(map(str, value)) if name == "hidden" else value
        )
    at.button(key="train_share").click().run()
    assert not at.exception and ui.trainer().runs == []
    shared = link(at)
    assert shared == to_query(ODD)
    again = open_link(shared, tiny_mnist, monkeypatch)
    assert form(again) == replace(ODD, device=Recipe().device)


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.key for lesson in LESSONS])
def test_each_lesson_in_start_from_fills_the_form(app, lesson):
    app.selectbox(key="train_lesson").set_value(lesson.key).run()
    assert not app.exception
    assert form(app) == replace(lesson.recipe, device=Recipe().device)
    assert lesson.text in texts(app.info)


def test_two_runs_compare_with_differences_marked_and_curves_on_shared_axes(app):
    from conftest import chart_data, start
    from ui.compare_view import DIFFERS

    quick = dict(hidden="32", batch_size=60, epochs=2, augment=False)
    for lr in (0.002, 0.01):
        start(app, **quick, lr=lr)
        assert ui.trainer().wait(60).status == "finished"
    app.run()
    assert not app.exception
    first, second = (job.id for job in ui.trainer().runs)  # ids count up across the process
    assert app.selectbox(key="train_compare_a").value == first
    assert app.selectbox(key="train_compare_b").value == second
    table = app.dataframe[-1].value
    marked = table[table[""] == DIFFERS]
    assert list(marked["setting"]) == ["Learning rate"]
    assert list(marked[f"run {first}"]) == ["0.002"] and list(marked[f"run {second}"]) == ["0.01"]
    charts = [c for c in app.get("vega_lite_chart") if "Test accuracy after each" in c.proto.spec]
    both = chart_data(charts[-1])  # one chart, shared axes: both runs' test accuracy per epoch
    runs = [f"#{first} 32 adam lr0.002 bs60 2ep", f"#{second} 32 adam lr0.01 bs60 2ep"]
    assert sorted(set(both["run"])) == runs
    assert list(both["epoch"]) == [1, 2, 1, 2]
    losses = [c for c in app.get("vega_lite_chart") if "Loss of each run" in c.proto.spec]
    assert set(chart_data(losses[-1])["run"]) == set(both["run"]) and not app.error
