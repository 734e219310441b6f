"""The Step through page under AppTest: each Step is Learner.one_batch from the same state,
"after" is a fresh forward pass, Reset goes back to the seed's weights, a copied model holds
its file's weights, settings change between steps, and forged values get a sentence."""

import copy
from dataclasses import replace

import pytest
import torch
from torch.testing import assert_close

import ui
from conftest import markdown, open_page
from mlp_core import DigitClassifier, Learner, Recipe, load_checkpoint, load_mnist, save_checkpoint
from mlp_core.data import Batches, to_float
from mlp_core.service.budget import BudgetError
from mlp_core.teach.stepper import DEFAULT
from ui import step_view

STEP = "app_pages/step.py"


@pytest.fixture
def page(tiny_mnist, monkeypatch):
    monkeypatch.setenv("MNIST_ROOT", str(tiny_mnist))
    return open_page(STEP, timeout=30)


@pytest.fixture(autouse=True)
def no_steppers_left():
    """AppTest's sessions never leave (no sweeper without a server): forget their steppers."""
    yield
    step_view._forget_departed(set())


def stepper(at):
    return step_view._STEPPERS[at.session_state[step_view.KEY]]


def click(at, key: str):
    at.button(key=key).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def assert_same_weights(a, b) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert_close(x, y, msg=name)


def test_a_step_moves_the_weights_as_one_batch_would_and_after_is_a_fresh_pass(page, tiny_mnist):
    s = stepper(page)
    assert s.steps == 0 and any("Press **Step**" in i.value for i in page.info)
    click(page, "step_one")
    model, opt = copy.deepcopy((s.model, s.learn.opt))  # the state before the next step
    ref = Learner(model, None, opt, cbs=())
    click(page, "step_one")
    rec = stepper(page).last
    assert stepper(page) is s and rec.step == 2
    xb = to_float(rec.images)  # (16, 28, 28): the batch the page shows
    ref.one_batch(xb, rec.labels)
    assert_same_weights(s.model, ref.model)
    with torch.no_grad():
        after = ref.model(xb)
    assert_close(rec.probs_after, after.softmax(1))
    # the second batch of the seed's shuffle, as a Learner's Batches draws it
    gen = torch.Generator().manual_seed(DEFAULT.seed)
    batches = iter(Batches(load_mnist(True, tiny_mnist), 16, generator=gen))
    next(batches)
    assert torch.equal(next(batches)[1], rec.labels)
    shown = f"**Loss of this batch, step 2: {rec.loss_before:.4f} → {rec.loss_after:.4f}**"
    assert any(m.startswith(shown) for m in markdown(page))
    # the batch, one picture, four units' gradients and their changes
    assert [len(i.proto.imgs) for i in page.image] == [16, 1, 4, 4]
    # the code beside each step wraps in its narrow column: none of it hidden off the edge
    assert len(page.code) >= 7 and all(c.proto.wrap_lines for c in page.code)
    click(page, "step_ten")
    assert s.steps == 12 and s.last.step == 12


def test_reset_restores_the_seeds_weights(page):
    for _ in range(2):
        click(page, "step_one")
    click(page, "step_reset")
    s = stepper(page)
    torch.manual_seed(DEFAULT.seed)
    fresh = DigitClassifier(DEFAULT.hidden, DEFAULT.init)
    assert s.steps == 0 and s.last is None
    for k, v in fresh.state_dict().items():
        assert torch.equal(s.model.state_dict()[k], v), k


def test_a_copied_model_holds_its_files_weights(page, tmp_path):
    torch.manual_seed(5)
    run = DigitClassifier((32,), "kaiming")
    save_checkpoint(tmp_path / "my-run.pt", run, Recipe(hidden=(32,)), {"test_accuracy": 0.5})
    page.run()  # a run finished: the chooser lists its model
    page.selectbox(key="step_from").set_value("my-run")
    click(page, "step_make")
    s = stepper(page)
    assert_same_weights(s.model, load_checkpoint(tmp_path / "my-run.pt").model)
    assert s.recipe.hidden == (32,)
    page.selectbox(key="step_from").set_value(ui.DEFAULT_NAME)
    click(page, "step_make")
    assert_same_weights(stepper(page).model, load_checkpoint(ui.DEFAULT_MODEL).model)
    click(page, "step_one")
    assert stepper(page).steps == 1


def test_settings_change_between_steps(page):
    click(page, "step_one")
    page.number_input(key="step_lr").set_value(10.0).run()
    page.selectbox(key="step_optimizer").set_value("sgd").run()
    page.number_input(key="step_batch").set_value(8).run()
    click(page, "step_one")
    rec = stepper(page).last
    assert (rec.optimizer, rec.lr, len(rec.labels)) == ("sgd", 10.0, 8)
    assert any("momentum" in m for m in markdown(page))


BAD = [
    ("step_lr", 1e12, "learning rate must be"),
    ("step_lr", -0.1, "learning rate must be"),
    ("step_batch", 0, "batch size must be"),
    ("step_batch", 10**9, "batch size must be"),
    ("step_pick", 17, "picture to look into"),
    ("step_pick", -1, "picture to look into"),
]


def test_a_bad_or_forged_value_gets_a_sentence_and_stepping_goes_on(page):
    good = {"step_lr": DEFAULT.lr, "step_batch": 16, "step_pick": 1}
    for n, (key, value, sentence) in enumerate(BAD, 1):
        page.number_input(key=key).set_value(value)
        click(page, "step_one")
        assert any(sentence in w.value for w in page.warning), (key, value)
        s = stepper(page)
        assert s.steps == n and (s.recipe.lr, s.recipe.batch_size) == (DEFAULT.lr, 16)
        page.number_input(key=key).set_value(good[key])


def test_a_forged_model_choice_is_never_opened(page, forge, outside_model):
    forge("step_from", outside_model)
    page.button(key="step_make").click().run()
    assert not page.exception and not page.error
    s = stepper(page)  # a value not in the list: the first choice, a network from the seed
    torch.manual_seed(DEFAULT.seed)
    assert_same_weights(s.model, DigitClassifier(DEFAULT.hidden, DEFAULT.init))


def test_the_server_holds_a_bounded_number_of_stepping_models(page, monkeypatch):
    mine = stepper(page)
    step_view._STEPPERS["another visitor's session"] = mine  # stands for theirs
    monkeypatch.setenv("MLP_MAX_STEPPERS", "1")
    page.button(key="step_make").click().run()
    assert [e.value for e in page.error] == [
        "Too many visitors are stepping through learning on this server now (at most 1 at "
        "once); try again in a few minutes."
    ]
    assert stepper(page) is mine  # the visitor keeps the network it had
    assert step_view._forget_departed({page.session_state[step_view.KEY]})  # the other left
    click(page, "step_make")
    assert stepper(page) is not mine and list(step_view._STEPPERS) == [
        page.session_state[step_view.KEY]
    ]


def test_one_epoch_is_off_while_a_run_trains_and_steps_still_work(page, monkeypatch):
    monkeypatch.setattr(step_view, "training", lambda: True)
    click(page, "step_epoch")
    assert stepper(page).steps == 0
    assert [w.value for w in page.warning] == [
        "A training run is using this server's processors now, and an epoch of steps here "
        "would slow it down, so One epoch is off until the run ends. Step and ×10 work "
        "meanwhile."
    ]
    click(page, "step_ten")
    assert stepper(page).steps == 10


def test_a_diverged_network_gets_a_sentence_not_a_traceback(page):
    page.number_input(key="step_lr").set_value(100.0)
    page.button(key="step_epoch").click().run()  # the loss overflows to NaN: the epoch stops
    assert not page.exception and [e.value for e in page.error] == [
        "The loss is no longer a number: the steps threw the weights so far that the sums "
        "overflowed. Nothing useful comes after this: press Reset and lower the learning rate."
    ]


def test_a_network_too_large_to_step_on_the_web_server_is_refused_by_the_budget(page):
    page.session_state["step_hidden"] = "2048, 2048"  # what typing it does
    page.button(key="step_make").click().run()
    assert not page.exception and len(page.error) == 1
    assert "parameters; this server trains at most 1,000,000" in page.error[0].value
    assert stepper(page).recipe.hidden == (256, 64)  # the visitor keeps the network it had
    assert step_view.price(DEFAULT).params == 218_058
    with pytest.raises(BudgetError, match="parameters"):
        step_view.price(replace(DEFAULT, hidden=(2048, 2048)))
