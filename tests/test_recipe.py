"""The recipe declared once: every field carries what the CLI, the form and validate need."""

from dataclasses import fields, replace

import pytest
import torch

from mlp_core import Recipe, RecipeError


def test_every_field_is_declared_with_its_label_help_and_rule():
    for f in fields(Recipe):
        m = f.metadata
        assert m.get("label") and m.get("help"), f"{f.name}: declare it with recipe.setting()"
        if f.type in (int, float):
            assert "must" in m and "low" in m, f"{f.name}: a number needs bounds and a sentence"
    assert Recipe().validate() == Recipe()  # the defaults pass their own rules


@pytest.mark.parametrize(
    "change, sentence",
    [
        (dict(init="xavier"), "Initialisation must be one of notebook, kaiming, got 'xavier'."),
        (dict(optimizer="rmsprop"), "Optimizer must be one of basic, sgd, adam, got 'rmsprop'."),
        (dict(lr=float("nan")), "Learning rate must be a positive number, got nan."),
        (dict(lr=0), "Learning rate must be a positive number, got 0."),
        (dict(momentum=1.0), "Momentum must be in [0, 1), got 1.0."),
        (dict(weight_decay="x"), "Weight decay must be in [0, 1), got 'x'."),
        (dict(batch_size=True), "Batch size must be a whole number of at least 1, got True."),
        (dict(epochs=1001), "Epochs above 1000 are more than this app will run."),
        (dict(augment=1), "Augment must be true or false, got 1."),
        (dict(hidden=(8193,)), "Hidden sizes above 8192 units are too large for this app."),
        (
            dict(cut_numbers=-1),
            "Numbers cut into digits must be a whole number from 0 to 100000, got -1.",
        ),
    ],
)
def test_each_rule_refuses_with_its_sentence(change, sentence):
    with pytest.raises(RecipeError) as e:
        replace(Recipe(), **change).validate()
    assert str(e.value) == sentence


def test_the_batch_is_checked_against_the_training_images_given():
    Recipe(batch_size=600).validate(n_train=600)
    with pytest.raises(RecipeError, match="Batch size 601 is larger than the 600 training images"):
        Recipe(batch_size=601).validate(n_train=600)


def test_no_hidden_layer_is_a_linear_model_that_saves_loads_and_explains(tmp_path):
    from mlp_core.checkpoint import load_checkpoint, save_checkpoint
    from mlp_core.insight import activations, top_units, weight_images
    from mlp_core.model import DigitClassifier

    recipe = Recipe(hidden=()).validate()
    assert recipe.describe().startswith("linear adam")
    model = DigitClassifier(recipe.hidden)
    assert [tuple(lin.weight.shape) for lin in model.linears()] == [(784, 10)]
    save_checkpoint(tmp_path / "linear.pt", model, recipe)
    loaded = load_checkpoint(tmp_path / "linear.pt")
    assert loaded.recipe.hidden == () and loaded.model.linears()[0].weight.shape == (784, 10)
    x = torch.rand(28, 28)
    assert activations(model, x) == [] and top_units(model, x) == []
    assert weight_images(model).shape == (10, 28, 28)  # one template per digit


def test_a_links_values_are_parsed_by_declaration_and_bad_ones_named():
    from mlp_core.recipe import LINKED, from_query, to_query

    odd = Recipe(hidden=(), lr=1 / 3, momentum=0.5, augment=False, seed=2**53 - 1)
    assert from_query(to_query(odd), Recipe()) == (odd, [])  # exact, floats included
    assert set(to_query(odd)) == set(LINKED) and "device" not in LINKED
    hostile = {
        "lr": "inf", "epochs": "9" * 5000, "hidden": "0-5", "augment": "yes", "init": "<b>",
        "seed": "-1", "batch_size": ["8"], "momentum": " 0.25 ", "device": "cuda:9",
    }  # fmt: skip
    got, bad = from_query(hostile, odd)
    assert bad == ["hidden", "init", "lr", "batch_size", "epochs", "seed", "augment"]
    assert got == replace(odd, momentum=0.25)  # the device is never taken from a link


def test_a_links_whole_numbers_fit_a_browsers_number_field_and_sizes_carry_no_signs():
    from mlp_core.recipe import MAX_LINK_WHOLE, from_query

    assert MAX_LINK_WHOLE == 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER
    base = Recipe()
    for name in ("seed", "batch_size"):
        for big in (2**53, 2**63 - 1, 2**64):
            assert from_query({name: str(big)}, base) == (base, [name])
    edge = from_query({"seed": str(2**53 - 1), "batch_size": str(2**53 - 1)}, base)
    assert edge == (replace(base, seed=2**53 - 1, batch_size=2**53 - 1), [])
    for text in ("-5-3", "5--3", "5-3-", "5,,3", "+5", "5_0", "٥", "5 3", "-"):
        assert from_query({"hidden": text}, base) == (base, ["hidden"]), text
    for text in ("+7", "1_000", "٣", " ", "0x10"):
        assert from_query({"epochs": text}, base) == (base, ["epochs"]), text
    good = {"hidden": "5-3", "epochs": " 7 "}
    assert from_query(good, base) == (replace(base, hidden=(5, 3), epochs=7), [])
    assert from_query({"hidden": "5, 3"}, base)[0].hidden == (5, 3)  # the form's own way
    assert from_query({"hidden": ""}, base)[0].hidden == ()  # a linear model


def test_cut_numbers_are_the_command_lines_only_and_named_in_the_run():
    from mlp_core.recipe import LINKED

    assert "cut_numbers" not in LINKED  # a link never asks the dashboard to cut
    assert Recipe(cut_numbers=8000).describe().endswith("40ep aug cut8000")
    assert "cut" not in Recipe().describe()
    assert Recipe(strokes=True).describe().endswith("40ep aug strokes")
    assert "strokes" not in Recipe().describe()
    old_file = {k: v for k, v in Recipe().to_dict().items() if k != "cut_numbers"}
    assert Recipe.from_dict(old_file).cut_numbers == 0  # files from before the field: MNIST alone
