"""The seven steps of learning by gradient descent, each with the code in mlp_core that does it.

The overview page shows each step's source, read from the running package with
`inspect.getsource`, so what a learner reads is always the code that runs.
"""

import inspect
import textwrap
from dataclasses import dataclass

import torch.nn.functional as F

from ..layers import Linear
from ..learner import DivergenceGuard, Learner
from ..optim import BasicOptim


@dataclass(frozen=True)
class Step:
    title: str
    text: str
    code: object  # the function that does it
    where: str  # how a reader finds it


STEPS = (
    Step("Initialise", "the weights at random.", Linear.reset_parameters,
         "mlp_core/layers.py: Linear.reset_parameters"),
    Step("Predict", "run a mini-batch of images through the network, layer by layer.",
         Linear.forward, "mlp_core/layers.py: Linear.forward"),
    Step("Loss", "measure how wrong the predictions are (cross-entropy, the Learner's "
         "loss_func).", F.cross_entropy, "torch.nn.functional.cross_entropy"),
    Step("Gradients", "backpropagation (`loss.backward()` in the Learner's one_batch) works "
         "out how each weight should change to lower the loss.", Learner.one_batch,
         "mlp_core/learner.py: Learner.one_batch"),
    Step("Step", "every weight moves a little against its gradient (the learning rate says "
         "how far).", BasicOptim.step, "mlp_core/optim.py: BasicOptim.step"),
    Step("Repeat", "from step 2 with the next mini-batch, epoch after epoch.", Learner.fit,
         "mlp_core/learner.py: Learner.fit"),
    Step("Stop", "when the epochs are done, a callback cancels, or the loss diverges.",
         DivergenceGuard.after_batch, "mlp_core/learner.py: DivergenceGuard.after_batch"),
)  # fmt: skip


def source(step: Step) -> str:
    """The step's code as the running package has it (dedented, for showing)."""
    return textwrap.dedent(inspect.getsource(step.code)).rstrip()
