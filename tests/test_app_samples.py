"""The Samples page under AppTest on the real MNIST: the grid, filters, one picture large,
the confusion matrix, the hardest pictures, and a forged model choice.
"""

import re

import pytest
import torch
from streamlit.testing.v1 import AppTest

import ui
from conftest import DASHBOARD, SAMPLES, chart_data, forged_values, grid, markdown, open_page
from mlp_core import load_checkpoint, load_mnist
from mlp_core.insight import hardest
from mlp_core.metrics import evaluate, predict_probs


@pytest.fixture(scope="module")
def test_split(mnist_root):
    """The real test split and the shipped model's answers to it, computed here independently."""
    split = load_mnist(False, mnist_root, download=False)
    probs = predict_probs(load_checkpoint(ui.DEFAULT_MODEL).model, split.images)
    return split, probs.argmax(1)


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
