"""The dashboard as a whole: its server settings, the layout (pages are short scripts that
call into `ui` and `mlp_core`), and what a visitor sees when a page fails.
"""

import ast
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from streamlit import config

import ui
from conftest import PREDICT, REPO, SAMPLES, grid, open_page, png, predictions
from make_bad_corpus import seven


def test_the_server_config_is_safe_and_valid():
    cfg = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["maxUploadSize"] == 10
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["client"]["showErrorDetails"] == config.ShowErrorDetailsConfigOptions.NONE
    assert cfg["client"]["toolbarMode"] == "minimal"
    assert cfg["browser"]["gatherUsageStats"] is False


def test_streamlit_run_from_the_repo_root_takes_these_settings():
    """What the server really runs with: Streamlit's own parsing, from the repo root's file."""
    keys = ["server.maxUploadSize", "server.enableXsrfProtection", "client.showErrorDetails"]
    code = (
        "import json, sys; from streamlit import config\n"
        "print(json.dumps({k: [config.get_option(k), config.get_where_defined(k)]"
        " for k in sys.argv[1:]}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    r = subprocess.run(
        [sys.executable, "-c", code, *keys],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    where = str(REPO / ".streamlit" / "config.toml")
    # 10 MB uploads; uploads need this app's XSRF token; errors show a sentence, no traceback
    assert json.loads(r.stdout) == {
        "server.maxUploadSize": [10, where],
        "server.enableXsrfProtection": [True, where],
        "client.showErrorDetails": ["none", where],
    }


def test_without_mnist_samples_shows_one_sentence_and_predict_still_works(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_ROOT", str(tmp_path))
    at = open_page(SAMPLES)
    assert [w.value for w in at.warning] == [ui.mnist_missing()]
    assert str(tmp_path) not in at.warning[0].value  # the server's folders stay private
    assert not at.image and not grid(at) and not at.get("vega_lite_chart")

    at.switch_page(PREDICT).run()
    at.file_uploader(key="predict_files").set_value(("7.png", png(seven()), "image/png")).run()
    assert not at.exception and not at.warning
    assert predictions(at)[0].startswith("#### Prediction: 7 (")


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
    assert {p.stem for p in PAGES} == {"overview", "train", "samples", "predict", "step"}


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
