"""Hostile and broken model files, through the CLI and the dashboard's model chooser.

Each is refused with its own sentence; a pickled payload never runs; the model in use stays
the one it was. (Loading rules themselves: test_checkpoint.py.)
"""

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import ui
from conftest import REPO, seven_png, shown
from mlp_core import DigitClassifier, Recipe, save_checkpoint
from mlp_core.cli import main as cli_main

MARKER = "PAYLOAD_RAN"
CODE = r"could run code, so it was refused and nothing in it was run\.$"
NOTEBOOK = r"^This file holds a whole pickled model \(saved the notebook's way"
CORRUPT = r"^The model file is truncated or corrupt, or not a PyTorch file at all\.$"
SHAPES = r"^The model file's main\.layers\.1\.weight has shape \[784, 31\], expected \[784, 32\]\.$"
NAN = r"^The model file's main\.layers\.1\.weight holds NaN, infinite or non-float values\.$"
FOREIGN = r"^This file is not an mlp_core model file \(no state dict and recipe inside\)\.$"


class Payload:
    """Creates a file when unpickled, if anything ever unpickles it unsafely."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def raw_checkpoint(path: Path, model, recipe, **changes) -> None:
    """Our file format by hand, with some state-dict entries replaced."""
    state = {k: v.clone() for k, v in model.state_dict().items()} | changes
    torch.save({"format": "mlp_core.checkpoint/1", "state_dict": state, "recipe": recipe}, path)


@pytest.fixture
def bad_models(tmp_path) -> dict[Path, str]:
    """Six bad model files in their own folder -> the regex each refusal must match."""
    folder = tmp_path / "models"
    folder.mkdir()
    torch.manual_seed(0)
    model, recipe = DigitClassifier((32, 16)), Recipe(hidden=(32, 16), epochs=1).to_dict()
    w = "main.layers.1.weight"
    files = {
        "payload": CODE,
        "notebook": NOTEBOOK,
        "truncated": CORRUPT,
        "wrong_shapes": SHAPES,
        "nan_weights": NAN,
        "not_a_model": CORRUPT,
        "foreign_torch_file": FOREIGN,
    }
    torch.save({"format": "x", "state_dict": Payload(tmp_path / MARKER)}, folder / "payload.pt")
    torch.save(model, folder / "notebook.pt")  # the notebook's export: the whole module
    good = save_checkpoint(tmp_path / "good.pt", model, Recipe(hidden=(32, 16), epochs=1))
    (folder / "truncated.pt").write_bytes(good.read_bytes()[:-200])
    raw_checkpoint(folder / "wrong_shapes.pt", model, recipe, **{w: torch.zeros(784, 31)})
    raw_checkpoint(
        folder / "nan_weights.pt", model, recipe, **{w: torch.full((784, 32), torch.nan)}
    )
    buf = io.BytesIO()
    Image.new("L", (28, 28)).save(buf, "PNG")
    (folder / "not_a_model.pt").write_bytes(buf.getvalue())
    torch.save({"weights": torch.zeros(3)}, folder / "foreign_torch_file.pt")
    return {folder / f"{name}.pt": regex for name, regex in files.items()}


def test_the_cli_refuses_each_with_one_line(bad_models, tmp_path, capsys):
    picture = tmp_path / "seven.png"
    picture.write_bytes(seven_png())
    for path, regex in bad_models.items():
        assert cli_main(["predict", "--model", str(path), str(picture)]) == 1, path.name
        out, err = capsys.readouterr()
        assert out == "" and err.endswith("\n") and err.count("\n") == 1, err
        assert re.search(regex, err.removeprefix("error: ").strip()), f"{path.name}: {err}"
    assert not (tmp_path / MARKER).exists(), "the payload ran"


def test_a_payload_never_runs_in_a_real_cli_process(bad_models, tmp_path):
    payload = next(p for p in bad_models if p.stem == "payload")
    picture = tmp_path / "seven.png"
    picture.write_bytes(seven_png())
    for cmd in (
        ["predict", "--model", str(payload), str(picture)],
        ["evaluate", "--model", payload],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "mlp_core", *map(str, cmd)],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert re.search(CODE, r.stderr.strip()), r.stderr
    assert not (tmp_path / MARKER).exists(), "the payload ran"


@pytest.fixture
def models_dir(bad_models, monkeypatch) -> Path:
    """Point the dashboard's model chooser at the folder of bad files."""
    folder = next(iter(bad_models)).parent
    monkeypatch.setenv("MLP_MODELS_DIR", str(folder))
    return folder


def probabilities(at: AppTest) -> list[str]:
    """The Predict page's answer and the spec (with data) of its probability chart."""
    return [m.value for m in at.markdown if "Prediction:" in m.value] + [
        c.proto.spec + str(list(c.proto.datasets)) for c in at.get("vega_lite_chart")
    ]


def test_the_predict_pages_chooser_refuses_each_and_keeps_the_model_in_use(
    bad_models, models_dir, tmp_path
):
    at = AppTest.from_file(str(REPO / "dashboard.py"), default_timeout=60).run()
    at.switch_page("app_pages/predict.py").run()
    at.file_uploader(key="predict_files").set_value(("7.png", seven_png(), "image/png")).run()
    before = probabilities(at)
    assert before and before[0].startswith("#### Prediction: 7 (")
    chooser = at.selectbox(key="predict_model")
    # labels come from each file's small summary: bad weights show only when the file is used
    weights_only_bad = {"wrong_shapes", "nan_weights"}
    assert set(chooser.options[1:]) == {
        f"{p.stem} · {'accuracy unknown' if p.stem in weights_only_bad else 'unreadable'}"
        for p in bad_models
    }
    shipped = ui.DEFAULT_MODEL.read_bytes()
    for path, regex in bad_models.items():
        at.selectbox(key="predict_model").set_value(path.stem).run()
        assert not at.exception, path.name
        assert len(at.error) == 1 and re.search(regex, shown(at.error[0].value)), at.error[0].value
        assert not probabilities(at), f"{path.name}: a refused model still answered"
        assert at.session_state["active_model"] == ui.DEFAULT_NAME  # the sidebar's
    at.selectbox(key="predict_model").set_value(ui.DEFAULT_NAME).run()
    assert not at.exception and not at.error
    assert probabilities(at) == before  # the same model, the same answer
    assert ui.DEFAULT_MODEL.read_bytes() == shipped
    assert not (tmp_path / MARKER).exists(), "the payload ran"


def test_the_samples_pages_chooser_refuses_each_and_keeps_browsing(
    bad_models, models_dir, tiny_mnist, tmp_path, monkeypatch
):
    monkeypatch.setenv("MNIST_ROOT", str(tiny_mnist))
    at = AppTest.from_file(str(REPO / "dashboard.py"), default_timeout=60).run()
    at.switch_page("app_pages/samples.py").run()
    assert not at.exception and not at.error
    for path, regex in bad_models.items():
        at.selectbox(key="samples_model").set_value(path.stem).run()
        assert not at.exception, path.name
        assert len(at.error) == 1 and re.search(regex, shown(at.error[0].value)), at.error[0].value
        assert at.toggle(key="samples_wrong").proto.disabled  # nothing to be wrong about
        assert len(at.image) > 1  # the pictures are still there, without answers
        assert not any("Prediction:" in m.value for m in at.markdown)
    at.selectbox(key="samples_model").set_value(ui.DEFAULT_NAME).run()
    assert not at.exception and not at.error
    assert any("Prediction:" in m.value for m in at.markdown)
    assert at.session_state["active_model"] == ui.DEFAULT_NAME
    assert not (tmp_path / MARKER).exists(), "the payload ran"
