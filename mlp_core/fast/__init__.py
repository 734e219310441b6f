"""The speed path: the training step captured as a CUDA graph, and the optimizers' state
on the device that it needs. Importing it plugs the captured step into build_learner."""

from ..train import use_fast_learner
from . import graph_step
from .graph_step import GraphLearner, StaticStep, can_capture


def _pick(device, always: bool):
    """GraphLearner where a step can be captured (or `always`: the CPU tests), else None."""
    return GraphLearner if always or graph_step.can_capture(device) else None


use_fast_learner(_pick)

__all__ = ["GraphLearner", "StaticStep", "can_capture"]
