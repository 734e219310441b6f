"""The dashboard's layout, checked: pages are short scripts that call into `ui` and
`mlp_core`; the training loop, the finder and chart specs stay out of them."""

import ast
from pathlib import Path

import pytest

from conftest import REPO, open_page

PAGES = sorted((REPO / "app_pages").glob("*.py"))
FORBIDDEN = ("mlp_core.learner", "mlp_core.lr_finder", "mlp_core.train", "altair")


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= {node.module or "", *(f"{node.module}.{a.name}" for a in node.names)}
    return names


def test_there_are_pages_to_check():
    assert {p.stem for p in PAGES} == {"overview", "train", "samples", "predict"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_a_page_imports_no_training_loop_finder_or_chart_library(page):
    bad = {n for n in imported(page) if n.startswith(FORBIDDEN) or n.split(".")[-1] in
           ("Learner", "build_learner", "lr_find", "LRFinder")}  # fmt: skip
    assert not bad, f"{page.name} imports {sorted(bad)}"
    text = page.read_text()
    assert "alt." not in text and "vega" not in text.lower(), f"{page.name} builds a chart spec"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_a_page_is_a_short_script(page):
    assert len(page.read_text().splitlines()) <= 200


def test_an_unexpected_error_in_a_page_shows_one_sentence_and_no_traceback(monkeypatch):
    import ui

    def broken():
        raise RuntimeError("secret detail /srv/app/internal.py line 7")

    monkeypatch.setattr(ui, "mnist_missing", broken)  # the Overview page asks for it
    at = open_page("app_pages/overview.py")
    assert not at.exception  # what Streamlit would show with its traceback
    assert [e.value for e in at.error] == [
        "Something went wrong on this page; the server's log has the details."
    ]
    shown = " ".join(str(e.value) for e in [*at.markdown, *at.error, *at.caption, *at.text])
    assert "secret" not in shown and "Traceback" not in shown and "RuntimeError" not in shown


def test_a_user_error_a_page_does_not_catch_is_its_sentence(monkeypatch):
    import ui
    from mlp_core import DataError

    def missing():
        raise DataError("MNIST is not in the folder given.")

    monkeypatch.setattr(ui, "mnist_missing", missing)
    at = open_page("app_pages/overview.py")
    assert not at.exception and [e.value for e in at.error] == ["MNIST is not in the folder given."]
