"""DigitClassifier: the notebook's multi-layer perceptron, 784 -> hidden... -> 10."""

import torch
from torch import nn

from .layers import Flatten, Linear, ReLU, Sequential

N_PIXELS, N_CLASSES = 28 * 28, 10


class DigitClassifier(nn.Module):
    """Flatten, then Linear + ReLU per hidden layer, then a Linear to 10 logits.

    The outputs are logits (unnormalised scores, one per digit); the loss,
    cross-entropy, applies softmax itself. Calling the model on a batch is
    step 2 of learning, *predict*.
    """

    def __init__(self, hidden: tuple[int, ...] = (256, 64), init: str = "notebook"):
        super().__init__()
        self.hidden = tuple(hidden)
        sizes = (N_PIXELS, *self.hidden, N_CLASSES)
        layers: list[nn.Module] = [Flatten()]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
            layers.append(Linear(n_in, n_out, init=init))
            if i < len(sizes) - 2:  # no ReLU after the last layer: logits may be negative
                layers.append(ReLU())
        self.main = Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)  # (B, 28, 28) -> (B, 10)

    def linears(self) -> list[Linear]:
        """The Linear layers in order (the first one's columns are pixel templates)."""
        return [m for m in self.main.layers if isinstance(m, Linear)]
