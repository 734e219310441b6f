"""The Samples and Predict pages, driven through Streamlit's AppTest (no browser).

Uploads go through AppTest's own file_uploader API; a drawing is the value the canvas
component sends (its JSON and a PNG data URL), put into session state the way the browser does.
"""

import base64
import json
import os
import random
import re
import subprocess
import sys
import tomllib

import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image, ImageDraw
from streamlit import config
from streamlit.testing.v1 import AppTest

import ui
from conftest import PREDICT, REPO, SAMPLES, open_page, png
from make_bad_corpus import seven
from mlp_core import load_checkpoint, load_mnist
from mlp_core.metrics import evaluate, predict_probs

SHIPPED_LABEL = f"default (shipped) · {load_checkpoint(ui.DEFAULT_MODEL).test_accuracy:.2%}"

NOT_A_PICTURE = "This file is not a picture"


def one_on_paper() -> Image.Image:
    img = Image.new("RGB", (200, 300), (245, 245, 240))
    ImageDraw.Draw(img).line([(100, 40), (100, 260)], fill=(20, 20, 20), width=16)
    return img


def markdown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def predictions(at: AppTest) -> list[str]:
    return [m for m in markdown(at) if "Prediction:" in m]


def chart_data(chart) -> pd.DataFrame:
    """The data of an st.altair_chart element, decoded from the Arrow bytes sent to the browser."""
    (dataset,) = chart.proto.datasets
    return pa.ipc.open_stream(dataset.data.data).read_all().to_pandas()


# -- Predict -----------------------------------------------------------------------------------


def test_predict_starts_with_a_hint_and_states_the_upload_limits():
    at = open_page(PREDICT)
    assert [t.label for t in at.tabs] == ["Draw", "Upload", "A number"]
    assert any(i.value.startswith("Draw a digit") for i in at.info)
    assert not at.error and not predictions(at)
    up = at.file_uploader(key="predict_files")
    assert up.accept_multiple_files
    assert set(up.allowed_type) == {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
    limits = " ".join(c.value for c in at.caption)
    assert f"up to {config.get_option('server.maxUploadSize')} MB" in limits
    assert "PNG, JPEG, BMP, GIF or WEBP" in limits and "25 megapixels" in limits
    # the sidebar's active model is preselected, shown by name with its accuracy
    model = at.selectbox(key="predict_model")
    assert model.value == ui.DEFAULT_NAME
    assert model.format_func(model.value) == SHIPPED_LABEL


def test_uploads_are_classified_and_a_bad_one_only_shows_its_sentence():
    at = open_page(PREDICT)
    at.file_uploader(key="predict_files").set_value(
        [
            ("seven.png", png(seven()), "image/png"),
            ("x.png", random.Random(0).randbytes(2000), "image/png"),  # seeded noise
            ("one on paper.jpg", png(one_on_paper(), "JPEG"), "image/jpeg"),
        ]
    ).run()
    assert not at.exception
    lines = predictions(at)
    assert len(lines) == 2
    assert re.fullmatch(r"#### Prediction: 7 \(\d+\.\d%\)", lines[0])
    assert lines[1].startswith("#### Prediction: 1 (")
    (error,) = at.error
    assert error.value.startswith("**x.png**: " + NOT_A_PICTURE)
    # each answer has its bar chart of ten probabilities (0-9 in order) and the 28x28 preview
    charts = [c for c in at.get("vega_lite_chart") if '"probability"' in c.proto.spec]
    assert len(charts) == 2
    probs = chart_data(charts[0])
    assert probs["digit"].tolist() == [str(d) for d in range(10)]
    assert probs["probability"].sum() == pytest.approx(1, abs=1e-4)
    assert probs["probability"].idxmax() == 7
    assert sum(img.captions == ["What the network sees"] for img in at.image) == 2


def test_a_drawing_is_classified_and_an_empty_canvas_shows_the_hint():
    at = open_page(PREDICT)
    url = "data:image/png;base64," + base64.b64encode(png(seven(mode="RGBA"))).decode()
    at.session_state["predict_canvas"] = {
        "drawing": {"raw": {"objects": [{"type": "path"}]}, "data": url},
        "backgroundFit": None,
    }
    at.run()
    assert not at.exception
    assert predictions(at)[0].startswith("#### Prediction: 7 (")
    assert not any(i.value.startswith("Draw a digit") for i in at.info)

    # cleared with the toolbar: no objects, a black picture -> the hint again, not an error
    black = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    at.session_state["predict_canvas"] = {
        "drawing": {
            "raw": {"objects": []},
            "data": "data:image/png;base64," + base64.b64encode(png(black)).decode(),
        },
        "backgroundFit": None,
    }
    at.run()
    assert not at.exception and not at.error and not predictions(at)
    assert any(i.value.startswith("Draw a digit") for i in at.info)


def test_a_bad_model_file_shows_its_sentence_and_the_page_keeps_working(tmp_path, monkeypatch):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model at all")
    at = open_page(PREDICT)
    model = at.selectbox(key="predict_model")
    assert model.options == [SHIPPED_LABEL, "broken · unreadable"]  # as shown
    model.set_value(broken.stem).run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The model file is truncated or corrupt, or not a PyTorch file at all."
    ]
    at.file_uploader(key="predict_files").set_value(("seven.png", png(seven()), "image/png")).run()
    assert not at.exception and len(at.error) == 1 and not predictions(at)
    assert [t.label for t in at.tabs] == ["Draw", "Upload", "A number"]
    at.selectbox(key="predict_model").set_value(ui.DEFAULT_NAME).run()
    assert not at.exception and not at.error
    assert predictions(at)[0].startswith("#### Prediction: 7 (")


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


# -- Samples -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def test_split(mnist_root):
    """The real test split and the shipped model's answers to it, computed here independently."""
    split = load_mnist(False, mnist_root, download=False)
    probs = predict_probs(load_checkpoint(ui.DEFAULT_MODEL).model, split.images)
    return split, probs.argmax(1)


def grid(at: AppTest) -> list[int]:
    """The picture numbers shown in the grid, in order (the `#i` button under each picture)."""
    return [int(b.label[1:]) for b in at.button if b.key and b.key.startswith("samples_pick_")]


@pytest.fixture
def samples(test_split, monkeypatch, mnist_root) -> AppTest:
    monkeypatch.setenv("MNIST_ROOT", str(mnist_root))
    return open_page(SAMPLES)


@pytest.mark.mnist
def test_samples_shows_a_grid_with_labels_and_the_models_answers(samples, test_split):
    split, preds = test_split
    shown = grid(samples)
    assert shown == list(range(48))  # 6 rows x 8 columns, the test split in order
    labels = [m for m in markdown(samples) if re.fullmatch(r"\*\*\d\*\*( :green\[✓\])?", m)]
    assert [int(m[2]) for m in labels] == split.labels[:48].tolist()
    wrong = [i for i in shown if preds[i] != split.labels[i]]
    assert sum("✗" in m and "predicted" in m for m in markdown(samples)) == len(wrong)
    assert len(samples.image) == 48 + 1 + 16  # the first one large, the 16 hardest

    samples.pagination[0].set_value(3).run()
    assert not samples.exception and grid(samples) == list(range(96, 144))
    samples.selectbox(key="samples_digit").set_value(0).run()  # a new selection: its page 1
    assert grid(samples) == (split.labels == 0).nonzero().flatten()[:48].tolist()


@pytest.mark.mnist
def test_only_misclassified_shows_only_the_mistakes(samples, test_split):
    split, preds = test_split
    mistakes = (preds != split.labels).nonzero().flatten().tolist()
    samples.toggle(key="samples_wrong").set_value(True).run()
    assert not samples.exception
    assert grid(samples) == mistakes[:48]
    marks = [m for m in markdown(samples) if "✗\u00a0predicted" in m]
    assert len(marks) == 48
    assert [int(re.search(r"predicted\u00a0(\d)", m)[1]) for m in marks] == [
        int(preds[i]) for i in mistakes[:48]
    ]
    assert any(f"{len(mistakes):,} pictures" in c.value for c in samples.caption)

    samples.selectbox(key="samples_digit").set_value(9).run()
    nines = [i for i in mistakes if split.labels[i] == 9]
    assert grid(samples) == nines[:48]


@pytest.mark.mnist
def test_random_set_is_reproducible_and_drawn_from_the_filter(samples, test_split):
    split, _ = test_split
    samples.selectbox(key="samples_digit").set_value(3).run()
    samples.button(key="samples_random").click().run()
    assert not samples.exception
    seed = samples.session_state["samples_seed"]
    shown = grid(samples)
    assert shown != sorted(shown) and all(split.labels[i] == 3 for i in shown)
    samples.run()  # a rerun keeps the same set
    assert grid(samples) == shown and samples.session_state["samples_seed"] == seed
    samples.button(key="samples_ordered").click().run()
    assert grid(samples) == sorted(grid(samples)) and grid(samples) != shown


@pytest.mark.mnist
def test_choosing_a_picture_shows_it_large_with_ten_probabilities(samples, test_split):
    split, preds = test_split
    mistake = int((preds != split.labels).nonzero()[0])
    samples.toggle(key="samples_wrong").set_value(True).run()
    samples.button(key=f"samples_pick_{mistake}").click().run()
    assert not samples.exception
    assert samples.number_input(key="samples_index").value == mistake
    large = [i.captions for i in samples.image if i.captions[0].startswith("test #")]
    assert large == [[f"test #{mistake}, labelled {int(split.labels[mistake])}"]]
    line = next(m for m in markdown(samples) if m.startswith("**Prediction:"))
    assert line.startswith(f"**Prediction: {int(preds[mistake])} (") and "✗ wrong" in line
    probs = chart_data(samples.get("vega_lite_chart")[0])
    assert probs["digit"].tolist() == [str(d) for d in range(10)]
    assert probs["probability"].idxmax() == int(preds[mistake])


@pytest.mark.mnist
def test_confusion_matrix_and_per_class_accuracy_of_the_test_split(samples, test_split, mnist_root):
    split, _ = test_split
    expected = evaluate(load_checkpoint(ui.DEFAULT_MODEL).model, split)
    assert samples.subheader[0].value.startswith("Where the model goes wrong")
    cm = chart_data(samples.get("vega_lite_chart")[1])  # long form: true, predicted, count
    table = cm.pivot(index="true", columns="predicted", values="count")
    assert table.to_numpy().tolist() == expected["confusion_matrix"]
    per_class = samples.dataframe[0].value
    assert per_class["accuracy"].tolist() == pytest.approx(expected["per_class_accuracy"])
    assert f"({expected['accuracy']:.2%})" in " ".join(markdown(samples))

    # the train split's grid works too; the confusion matrix stays the test split's
    samples.radio(key="samples_split").set_value("train").run()
    assert not samples.exception and grid(samples) == list(range(48))
    assert samples.number_input(key="samples_index").value == 0


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
