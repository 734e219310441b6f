"""verifier: the shipped "one whole digit?" network, its file's safety, and how it was made."""

import io

import numpy as np
import pytest
import torch

from conftest import need
from mlp_core.checkpoint import ModelFileError
from mlp_core.vision.segment import N_FEATURES
from mlp_core.vision.verifier import (
    MAX_FILE_BYTES,
    SHIPPED,
    Verifier,
    VerifierRecipe,
    examples,
    load_verifier,
    save_verifier,
    score,
)


@pytest.fixture(scope="module")
def shipped():
    need(SHIPPED.exists(), f"{SHIPPED} is missing: run python -m mlp_core train-verifier")
    return load_verifier(SHIPPED)


def test_the_shipped_verifier_is_small_and_says_how_it_was_made(shipped):
    assert SHIPPED.stat().st_size < 1_000_000
    payload = torch.load(SHIPPED, weights_only=True)
    assert payload["recipe"] == {**vars(VerifierRecipe()), "hidden": list(VerifierRecipe().hidden)}
    assert payload["record"]["test_accuracy"] >= 0.9


def test_the_shipped_verifier_tells_whole_digits_from_parts_on_test_digits(shipped, mnist_root):
    from mlp_core.data import load_mnist

    images = load_mnist(False, mnist_root).images.numpy()  # never seen in its training
    x, f, t = examples(images, 60, np.random.default_rng(11))
    got = score(shipped, x, f, t)
    assert got["test_accuracy"] >= 0.92 and got["part_rejected"] >= 0.94, got  # 96.4%, 97.5%


def test_a_saved_verifier_loads_back_the_same(tmp_path):
    torch.manual_seed(0)
    model = Verifier((8,))
    path = save_verifier(tmp_path / "v.pt", model, VerifierRecipe(hidden=(8,)), {"seconds": 1})
    again = load_verifier(path)
    x, f = torch.rand(4, 28, 28), torch.rand(4, N_FEATURES)
    torch.testing.assert_close(again.whole(x, f), model.whole(x, f))


def saved(payload) -> bytes:
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def test_a_bad_verifier_file_is_refused_with_a_sentence(tmp_path):
    model = Verifier((8,))
    path = save_verifier(tmp_path / "v.pt", model, VerifierRecipe(hidden=(8,)), {})
    good = torch.load(path, weights_only=True)
    nan = {k: v.clone() for k, v in good["state_dict"].items()}
    next(iter(nan.values()))[0] = float("nan")
    cases = {
        "not an mlp_core verifier": {**good, "format": "something else"},
        "recipe is not valid": {**good, "recipe": {"hidden": [8]}},
        "hidden sizes are not valid": {**good, "recipe": {**good["recipe"], "hidden": [-1]}},
        r"has shape \[\d+, 8\], expected \[\d+, 9\]": {
            **good,
            "recipe": {**good["recipe"], "hidden": [9]},
        },
        "do not match a verifier": {**good, "state_dict": {"w": torch.zeros(1)}},
        "NaN": {**good, "state_dict": nan},
    }
    for words, payload in cases.items():
        with pytest.raises(ModelFileError, match=words):
            load_verifier(saved(payload))
    with pytest.raises(ModelFileError, match="could run code"):
        load_verifier(saved(model))  # a pickled module would run code on loading
    with pytest.raises(ModelFileError, match="too large"):
        load_verifier(b"\0" * (MAX_FILE_BYTES + 1))


def test_train_verifier_on_the_command_line_writes_a_file_that_loads(tiny_mnist, tmp_path):
    from test_cli import cli

    out = tmp_path / "v.pt"
    r = cli("train-verifier", "--data-dir", str(tiny_mnist), "--numbers", "30", "--epochs",
            "1", "--hidden", "8", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1].startswith("Verifier: ") and f"saved {out}" in r.stdout
    assert load_verifier(out).main[0].out_features == 8
    bad = cli("train-verifier", "--data-dir", str(tiny_mnist), "--hidden", "0", "--out", str(out))
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1
