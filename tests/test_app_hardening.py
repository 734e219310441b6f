"""What a hostile browser can send the pages: forged choices, many uploads, markup in text.

A widget's value comes from the browser, which can send anything (a test or a rewritten
websocket message): AppTest sets such values the same way.
"""

import os

import pytest
import streamlit as st
import torch
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1.element_tree import Selectbox
from test_app_pages import one_on_paper, predictions

import ui
from conftest import PREDICT, SAMPLES, TRAIN, open_page, png, shown
from make_bad_corpus import seven
from mlp_core import DigitClassifier, Recipe, save_checkpoint


@pytest.fixture
def forge(monkeypatch):
    """forge(key, value): from now on the selectbox `key` sends `value` as its state, as a
    browser that rewrites its websocket messages does (the real frontend sends the
    chosen option's label as a string)."""
    forged: dict[str, str] = {}
    real = Selectbox._widget_state.fget

    def state(self) -> WidgetState:
        if self.key not in forged:
            return real(self)
        ws = WidgetState()
        ws.id, ws.string_value = self.id, forged[self.key]
        return ws

    monkeypatch.setattr(Selectbox, "_widget_state", property(state))
    return forged.__setitem__


@pytest.fixture
def outside_model(tmp_path) -> str:
    """A valid model file outside the models folder, whose answers differ from the shipped one."""
    torch.manual_seed(1)
    outside = tmp_path / "elsewhere" / "outside.pt"  # tmp_path itself is the models folder
    return str(save_checkpoint(outside, DigitClassifier(), Recipe()))


def forged_values(tmp_path, outside_model) -> list[str]:
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    return [outside_model, "/dev/zero", str(fifo), "../models/default.pt", "/etc/passwd"]


def test_a_forged_model_choice_is_ignored_and_never_opened(
    tmp_path, outside_model, monkeypatch, forge
):
    opened = []  # every path the page reads a model or its summary from
    ui.models._summary.cache_clear()  # (earlier tests' cached reads would hide the reads here)
    st.cache_resource.clear()
    for name in ("read_summary", "load_checkpoint"):
        real = getattr(ui.models, name)
        monkeypatch.setattr(ui.models, name, lambda p, real=real: opened.append(str(p)) or real(p))
    at = open_page(PREDICT)
    at.file_uploader(key="predict_files").set_value(("7.png", png(seven()), "image/png")).run()
    honest = predictions(at)
    assert honest and honest[0].startswith("#### Prediction: 7 (")
    forged = forged_values(tmp_path, outside_model)
    for value in forged:  # a FIFO opened would hang the page past AppTest's timeout
        forge("predict_model", value)
        at.run(timeout=20)
        assert not at.exception and not at.error, value
        assert predictions(at) == honest, f"{value}: the answer changed"
        assert at.session_state["active_model"] == ui.DEFAULT_NAME
    assert opened and not set(opened) & set(forged)
    assert set(opened) == {str(ui.DEFAULT_MODEL)}


def test_a_forged_choice_on_the_samples_page_keeps_the_shipped_model(
    tmp_path, outside_model, tiny_mnist, monkeypatch, forge
):
    monkeypatch.setenv("MNIST_ROOT", str(tiny_mnist))
    at = open_page(SAMPLES)
    before = [m.value for m in at.markdown if "Prediction:" in m.value]
    for value in forged_values(tmp_path, outside_model):
        forge("samples_model", value)
        at.run(timeout=20)
        assert not at.exception and not at.error, value
        assert [m.value for m in at.markdown if "Prediction:" in m.value] == before


def test_one_upload_reads_at_most_its_limit_and_says_so():
    at = open_page(PREDICT)
    n = ui.MAX_FILES_PER_UPLOAD + 5
    files = [(f"{i}.png", png(one_on_paper()), "image/png") for i in range(n)]
    at.file_uploader(key="predict_files").set_value(files).run()
    assert not at.exception
    assert len(predictions(at)) == ui.MAX_FILES_PER_UPLOAD
    (warning,) = at.warning
    assert warning.value.startswith(f"Only the first {ui.MAX_FILES_PER_UPLOAD} pictures were read")


def test_the_bytes_one_session_holds_are_bounded(monkeypatch):
    monkeypatch.setattr(ui.server, "MAX_SESSION_UPLOAD_BYTES", 3 * len(png(one_on_paper())))
    at = open_page(PREDICT)
    files = [(f"{i}.png", png(one_on_paper()), "image/png") for i in range(5)]
    at.file_uploader(key="predict_files").set_value(files).run()
    assert not at.exception and len(predictions(at)) == 3
    assert at.warning[0].value.startswith("Only the first 3 pictures were read")


def test_markup_in_a_file_name_is_shown_as_text():
    at = open_page(PREDICT)
    name = "**bold** :red[red] ![x](http://evil.example/a.png) www.evil.example.png"
    at.file_uploader(key="predict_files").set_value((name, png(seven()), "image/png")).run()
    assert not at.exception
    titles = [m.value for m in at.markdown if m.value.startswith("**") and "bold" in m.value]
    assert len(titles) == 1
    assert shown(titles[0]) == f"**{name}**"  # escaped: a reader sees exactly the name
    assert "\\*\\*bold\\*\\*" in titles[0] and "\\:red" in titles[0] and "]\\(" in titles[0]
    assert "www." not in titles[0]  # "www." would become a link even when escaped


def test_markup_in_the_hidden_sizes_is_shown_as_text(tiny_mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_ROOT", str(tiny_mnist))
    at = open_page(TRAIN)
    at.text_input(key="train_hidden").set_value("**bold** ![x](http://evil.example/a.png)")
    at.button(key="train_start").click().run()
    assert not at.exception
    (error,) = at.error
    assert "\\*\\*bold\\*\\*" in error.value and "]\\(" in error.value
    assert "**bold** ![x](http:" in shown(error.value)
