"""The overview's seven steps show the source of the functions the Learner really calls."""

import inspect
import textwrap

from conftest import open_page
from mlp_core import Split
from mlp_core.teach.lessons import LESSONS, NOTEBOOK
from mlp_core.teach.steps import STEPS, source
from mlp_core.train import build_learner


def called_by_a_learner() -> dict:
    """Each step's function, taken from a Learner built for the notebook's recipe."""
    import torch

    train = Split(torch.zeros(64, 28, 28, dtype=torch.uint8), torch.zeros(64, dtype=torch.long))
    learn = build_learner(NOTEBOOK, train)
    guard = next(cb for cb in learn.cbs if type(cb).__name__ == "DivergenceGuard")
    first = learn.model.linears()[0]
    return {
        "Initialise": type(first).reset_parameters,
        "Predict": type(first).forward,
        "Loss": learn.loss_func,
        "Gradients": type(learn).one_batch,
        "Step": type(learn.opt).step,
        "Repeat": type(learn).fit,
        "Stop": type(guard).after_batch,
    }


def test_each_steps_source_is_the_source_of_what_the_learner_calls():
    calls = called_by_a_learner()
    assert [s.title for s in STEPS] == list(calls)
    for step in STEPS:
        got = inspect.getsource(calls[step.title])
        assert source(step) == textwrap.dedent(got).rstrip(), step.title
    assert "loss.backward()" in source(STEPS[3]) and "self.opt.step()" in source(STEPS[3])


def test_the_overview_shows_each_steps_code_and_lists_the_lessons():
    at = open_page("app_pages/overview.py")
    calls = called_by_a_learner()
    shown = [textwrap.dedent(inspect.getsource(f)).rstrip() for f in calls.values()]
    assert [c.value for c in at.code] == shown
    listed = " ".join(m.value for m in at.markdown)
    assert all(lesson.name in listed for lesson in LESSONS)
