"""Looking inside the network on the dashboard: templates, the LR finder, "why", hardest.

Driven through the real dashboard with Streamlit's AppTest; the Train page trains on tiny
synthetic MNIST, the Samples page reads the real one.
"""

import base64
import io
import re

import pyarrow as pa
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import ui
from conftest import DASHBOARD, seven_png
from mlp_core import load_checkpoint, load_mnist, preprocess
from mlp_core.insight import activations, hardest, top_units
from mlp_core.metrics import predict_probs


def chart_data(chart, i: int = 0):
    """Dataset `i` of an st.altair_chart element, decoded from the Arrow bytes it sends."""
    return pa.ipc.open_stream(chart.proto.datasets[i].data.data).read_all().to_pandas()


def charts(at, title: str) -> list:
    return [c for c in at.get("vega_lite_chart") if title in c.proto.spec]


def grid_image(at):
    """The grid of first-layer templates (the image whose caption starts with 'Run ')."""
    (img,) = [i for i in at.image if i.captions[0].startswith("Run ")]
    return img


# -- Train: templates, norms, augmentation ---------------------------------------------------


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

    originals, warps = preview().image
    assert warps.captions[0].startswith("Three random warps of each")
    preview().button[0].click().run()
    assert not at.exception
    again = preview().image
    assert again[0].value == originals.value and again[1].value != warps.value


# -- Train: the learning-rate finder ---------------------------------------------------------


def test_the_lr_finder_plots_suggests_and_puts_its_rate_into_the_form(app):
    at = app
    at.text_input(key="train_hidden").set_value("64")
    at.number_input(key="train_batch_size").set_value(20)
    at.button(key="train_find").click().run()
    assert not at.exception and not at.error
    assert ui.trainer().jobs == []  # nothing trained, nothing saved

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


# -- Predict: why this answer ----------------------------------------------------------------


def test_predict_explains_an_answer_with_activations_units_and_saliency():
    at = AppTest.from_file(DASHBOARD, default_timeout=60).run()
    at.switch_page("app_pages/predict.py").run()
    data = seven_png()
    at.file_uploader(key="predict_files").set_value(("seven.png", data, "image/png")).run()
    assert not at.exception
    # an upload's expander starts closed, and nothing inside it is computed until it opens
    (why,) = [e for e in at.expander if e.label == "Why this answer?"]
    assert not why.proto.expanded and not why.get("vega_lite_chart") and not why.image
    (key,) = [k for k in at.session_state if str(k).startswith("predict_why_")]
    at.session_state[key] = True  # what clicking it does
    at.run()
    assert not at.exception
    (why,) = [e for e in at.expander if e.label == "Why this answer?"]

    model = load_checkpoint(ui.DEFAULT_MODEL).model
    x = preprocess(data).tensor[0]  # (28, 28)
    assert int(predict_probs(model, x).argmax()) == 7
    acts = activations(model, x)
    units = top_units(model, x, 7, k=5)

    strips = [c for c in why.get("vega_lite_chart") if '"activation"' in c.proto.spec]
    assert len(strips) == 2
    titles = [m.value for m in why.markdown if "Hidden layer" in m.value]
    for chart, title, a, n in zip(strips, titles, acts, (256, 64), strict=True):
        cells = chart_data(chart, 0)
        assert cells["unit"].tolist() == list(range(n))
        torch.testing.assert_close(torch.tensor(cells["activation"].to_numpy()), a.double())
        layer = 1 + (n == 64)
        assert f"**Hidden layer {layer}**: {int((a > 0).sum())} of {n} units active" in title
    assert chart_data(strips[0], 1)["unit"].tolist() == [u for u, _ in units]  # marked
    assert len(chart_data(strips[1], 1)) == 0  # the units below are the first layer's

    captions = [i.captions[0] for i in why.image]
    assert captions[0] == "Which ink mattered"
    assert captions[1:] == [f"unit {u} · {c:+.2f}" for u, c in units]
    assert units[0][1] > 0
    assert any("The first-layer units that voted most for 7" in m.value for m in why.markdown)
    assert any("red ink pushed the answer towards 7" in c.value for c in why.caption)


def test_a_drawing_is_explained_at_once():
    at = AppTest.from_file(DASHBOARD, default_timeout=60).run()
    at.switch_page("app_pages/predict.py").run()
    rgba = Image.open(io.BytesIO(seven_png())).convert("RGBA")
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    at.session_state["predict_canvas"] = {  # what the canvas component sends after a stroke
        "drawing": {"raw": {"objects": [{"type": "path"}]}, "data": url},
        "backgroundFit": None,
    }
    at.run()
    assert not at.exception
    (why,) = [e for e in at.expander if e.label == "Why this answer?"]
    assert why.proto.expanded  # one picture: its explanation is open from the start
    assert len([c for c in why.get("vega_lite_chart") if '"activation"' in c.proto.spec]) == 2
    assert [i.captions[0] for i in why.image][0] == "Which ink mattered" and len(why.image) == 6


# -- Samples: the hardest test pictures ------------------------------------------------------


@pytest.mark.mnist
def test_samples_shows_the_test_pictures_with_the_lowest_probability_of_their_label(
    mnist_root, monkeypatch
):
    monkeypatch.setenv("MNIST_ROOT", str(mnist_root))
    at = AppTest.from_file(DASHBOARD, default_timeout=60).run()
    at.switch_page("app_pages/samples.py").run()
    assert not at.exception
    assert "The hardest test pictures for this model" in [s.value for s in at.subheader]

    test = load_mnist(False, mnist_root, download=False)
    probs = predict_probs(load_checkpoint(ui.DEFAULT_MODEL).model, test.images)  # (N, 10)
    p_true = probs[torch.arange(len(test)), test.labels]  # (N,)
    expected = hardest(probs, test.labels, 16)
    assert [i for i, _ in expected] == p_true.argsort()[:16].tolist()

    pattern = re.compile(r"true\s(\d) · predicted\s(\d) · p\(true\)=(\d+\.\d)%")
    shown = [m.groups() for i in at.image if (m := pattern.fullmatch(i.captions[0]))]
    assert len(shown) == 16
    for (true, pred, p), (i, p_exp) in zip(shown, expected):
        assert int(true) == int(test.labels[i])
        assert int(pred) == int(probs[i].argmax()) != int(true)
        assert float(p) == pytest.approx(100 * p_exp, abs=0.051)
    # in order, lowest first, and nothing outside the sixteen gets a lower p(true)
    assert [float(p) for *_, p in shown] == sorted(float(p) for *_, p in shown)
    others = torch.ones(len(test), dtype=torch.bool)
    others[[i for i, _ in expected]] = False
    assert (p_true[others] >= max(p for _, p in expected)).all()
