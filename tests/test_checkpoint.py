"""Model files: round trip, atomic writes, and refusal of anything that could run code."""

import io
import os
import pickle
import random
from pathlib import Path

import pytest
import torch

from mlp_core import DigitClassifier, ModelFileError, Recipe, load_checkpoint, save_checkpoint
from mlp_core.service.models_folder import safe_model_path, save_as


@pytest.fixture
def model():
    torch.manual_seed(0)
    return DigitClassifier((32, 16))


RECIPE = Recipe(hidden=(32, 16), epochs=1)


def test_round_trip_gives_identical_logits(tmp_path, model):
    path = save_checkpoint(tmp_path / "m.pt", model, RECIPE, {"test_accuracy": 0.5, "epochs": 1})
    ckpt = load_checkpoint(path)
    x = torch.rand(4, 28, 28)
    assert torch.equal(ckpt.model(x), model.eval()(x))
    assert ckpt.recipe == RECIPE and ckpt.test_accuracy == 0.5
    assert load_checkpoint(path.read_bytes()).recipe == RECIPE  # bytes work too


@pytest.mark.parametrize(
    "error", [OSError(28, "No space left on device"), KeyboardInterrupt()], ids=["disk", "ctrl-c"]
)
@pytest.mark.parametrize("where", ["write", "replace"])
def test_failed_save_leaves_old_file_and_no_temp(tmp_path, model, monkeypatch, error, where):
    path = save_checkpoint(tmp_path / "m.pt", model, RECIPE, {"test_accuracy": 0.1})
    before = path.read_bytes()

    def crash_midway(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a file")
        raise error

    def crash(*a, **k):  # the whole new file is written, then the rename fails
        raise error

    if where == "write":
        monkeypatch.setattr(torch, "save", crash_midway)
    else:
        monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(type(error)):
        save_checkpoint(path, DigitClassifier((32, 16)), RECIPE, {"test_accuracy": 0.9})
    assert path.read_bytes() == before
    assert load_checkpoint(path).test_accuracy == 0.1
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]  # no temporary file left behind


class Payload:
    """A pickle that creates a file when unpickled, if anything ever unpickles it unsafely."""

    target = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_code_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    Payload.target = str(marker)
    bad = tmp_path / "evil.pt"
    torch.save({"format": "x", "state_dict": Payload()}, bad)  # zip container, like a real file
    raw2, raw4 = tmp_path / "evil2.pkl", tmp_path / "evil4.pkl"
    raw2.write_bytes(pickle.dumps(Payload(), protocol=2))  # and bare pickles
    raw4.write_bytes(pickle.dumps(Payload(), protocol=4))
    assert not marker.exists()
    for f in (bad, raw2, raw4):
        with pytest.raises(ModelFileError, match="could run code"):
            load_checkpoint(f)
    assert not marker.exists()


def test_notebook_style_whole_module_is_refused(tmp_path, model):
    path = tmp_path / "digit_classifier.pt"
    torch.save(model, path)  # the notebook's export
    with pytest.raises(ModelFileError, match="whole pickled model"):
        load_checkpoint(path)


def test_truncated_file_is_refused(tmp_path, model):
    data = save_checkpoint(tmp_path / "m.pt", model, RECIPE).read_bytes()
    for cut in (data[: len(data) // 2], data[:-1], b"", b"not a model at all"):
        with pytest.raises(ModelFileError, match="truncated or corrupt"):
            load_checkpoint(cut)


def payload(model, recipe=RECIPE, **changes):
    buf = io.BytesIO()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state.update(changes)
    d = {"format": "mlp_core.checkpoint/1", "state_dict": state, "recipe": recipe.to_dict()}
    torch.save(d, buf)
    return buf.getvalue()


def test_wrong_shapes_nan_and_foreign_files_are_refused(model):
    w = "main.layers.1.weight"
    with pytest.raises(ModelFileError, match="shape"):
        load_checkpoint(payload(model, **{w: torch.zeros(784, 31)}))
    with pytest.raises(ModelFileError, match="NaN"):
        load_checkpoint(payload(model, **{w: torch.full((784, 32), float("nan"))}))
    with pytest.raises(ModelFileError, match="do not match"):
        load_checkpoint(payload(model, **{"extra": torch.zeros(1)}))
    with pytest.raises(ModelFileError, match="do not match"):
        load_checkpoint(payload(model, Recipe(hidden=(64,))))
    buf = io.BytesIO()
    torch.save({"some": torch.zeros(2)}, buf)  # a valid torch file that is not ours
    with pytest.raises(ModelFileError, match="not an mlp_core model"):
        load_checkpoint(buf.getvalue())


def test_missing_file_is_one_sentence(tmp_path):
    with pytest.raises(ModelFileError, match="Cannot read"):
        load_checkpoint(tmp_path / "absent.pt")


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/abs/path/x", "a/../../b", "..", "we ird*name?.pt", ".hidden"]
)
def test_user_typed_names_stay_inside_models(tmp_path, name):
    path = safe_model_path(name, tmp_path)
    assert path.parent == tmp_path.resolve() and path.suffix == ".pt"
    assert not path.name.startswith(".")


def test_save_as_copies_under_a_safe_name_and_never_replaces_a_model(tmp_path, model):
    models = tmp_path / "models"
    src = save_checkpoint(tmp_path / "run.pt", model, RECIPE, {"test_accuracy": 0.5})
    saved = save_as(src, "../../my best/model", models)
    assert saved == models.resolve() / "model.pt"
    assert load_checkpoint(saved).test_accuracy == 0.5
    first = saved.read_bytes()
    other = save_checkpoint(tmp_path / "other.pt", DigitClassifier((32, 16)), RECIPE)
    with pytest.raises(ModelFileError, match="^A model named model already exists; choose"):
        save_as(other, "model", models)
    assert saved.read_bytes() == first  # the earlier model is intact
    with pytest.raises(ModelFileError, match="^Type a name for the model first"):
        save_as(src, "  ", models)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        save_as(tmp_path / "junk.pt", "junk", models)
    assert sorted(os.listdir(models)) == ["model.pt"]  # no temporary files, no junk copied


def test_save_without_overwrite_refuses_a_taken_name_atomically(tmp_path, model):
    path = save_checkpoint(tmp_path / "m.pt", model, RECIPE, {"test_accuracy": 0.1})
    with pytest.raises(FileExistsError):
        save_checkpoint(path, DigitClassifier((32, 16)), RECIPE, overwrite=False)
    assert load_checkpoint(path).test_accuracy == 0.1
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_mangled_files_raise_nothing_but_model_file_error(tmp_path, model):
    good = save_checkpoint(tmp_path / "m.pt", model, RECIPE).read_bytes()
    rng = random.Random(0)
    files = [b"junk", b"\x80", b"PK\x03\x04", b"PK\x05\x06" + bytes(18)]  # struct.error, once
    for i in range(300):
        data, at = bytearray(good), rng.randrange(len(good))
        if i % 3 == 0:
            data[at] ^= rng.randrange(1, 256)  # a flipped byte
        elif i % 3 == 1:
            del data[at : at + rng.randrange(1, 50)]  # a lost stretch
        else:
            del data[at:]  # cut short
        files.append(bytes(data))
    for data in files:
        try:
            ckpt = load_checkpoint(data)
        except ModelFileError as e:
            assert "\n" not in str(e) and str(e).endswith(".")
            continue
        assert torch.isfinite(ckpt.model(torch.rand(2, 28, 28))).all()  # usable when accepted


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(recipe="256-64"), "not an mlp_core model file"),
        (dict(state_dict=[1, 2]), "not an mlp_core model file"),
        (dict(record=5), "not an mlp_core model file"),
        (dict(recipe={"hidden": 5}), "recipe is not valid"),
        (dict(recipe={"hidden": [32, 16], "momentum": "x"}), "Momentum must be in"),
        (dict(record={"test_accuracy": "high"}), "test accuracy is not a number from 0 to 1"),
        (dict(record={"test_accuracy": float("nan")}), "test accuracy is not a number"),
    ],
)
def test_odd_contents_are_refused_with_a_sentence(model, changes, message):
    buf = io.BytesIO()
    d = {"format": "mlp_core.checkpoint/1", "state_dict": model.state_dict()}
    torch.save({**d, "recipe": RECIPE.to_dict(), **changes}, buf)
    with pytest.raises(ModelFileError, match=message):
        load_checkpoint(buf.getvalue())
