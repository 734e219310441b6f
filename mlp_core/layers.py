"""The network's building blocks, written by hand for the sake of learning.

Each layer is a tiny `nn.Module`: it holds its parameters and says how an input
becomes an output. PyTorch's autograd works out the backward pass for us.
"""

import torch
from torch import nn


class Linear(nn.Module):
    """A fully connected layer: `x @ weight + bias`.

    Every output unit is a weighted sum of every input value plus a shift (the
    bias). The weights start random (step 1 of learning, *initialise*) and are
    what training adjusts. Wrapping them in `nn.Parameter` registers them with
    the module, so `model.parameters()` hands them to the optimizer, and makes
    autograd record how the loss depends on them (`requires_grad`): after
    `loss.backward()` each one's `.grad` says how changing it would change the
    loss.
    """

    def __init__(self, in_features: int, out_features: int, init: str = "notebook"):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        # (in, out), not PyTorch's (out, in), so that forward reads x @ weight as in the notebook
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.reset_parameters(init)

    def reset_parameters(self, init: str = "notebook") -> None:
        """Draw fresh random weights: `notebook` (randn * 0.1) or `kaiming` (He)."""
        with torch.no_grad():
            if init == "notebook":
                self.weight.copy_(torch.randn_like(self.weight) * 0.1)
                self.bias.copy_(torch.randn_like(self.bias) * 0.1)
            elif init == "kaiming":
                # std sqrt(2 / fan_in) keeps the size of activations steady through ReLUs
                self.weight.copy_(torch.randn_like(self.weight) * (2.0 / self.in_features) ** 0.5)
                self.bias.zero_()
            else:
                raise ValueError(f"unknown init {init!r}: use 'notebook' or 'kaiming'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias  # (B, in) @ (in, out) + (out,) -> (B, out)

    def extra_repr(self) -> str:
        """What print(model) shows inside `Linear(...)`, as torch.nn.Linear does."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class ReLU(nn.Module):
    """Rectified linear unit: negative values become 0, positive ones pass.

    This non-linearity is what makes depth worth having: a stack of linear
    layers without it collapses into a single linear function.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch.max(x, 0) in the notebook; relu computes the same, and its backward is one fast op
        return torch.relu(x)


class Flatten(nn.Module):
    """Reshape each image into one row of pixels: (B, 28, 28) -> (B, 784)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.size(0), -1)  # reshape, not view: also takes non-contiguous batches


class Sequential(nn.Module):
    """Run layers one after another, each feeding the next (a feed-forward net)."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(layers)  # a ModuleList registers each layer's parameters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> nn.Module:
        return self.layers[i]

    def __repr__(self) -> str:
        lines = "\n".join(f"    ({i}): {layer}" for i, layer in enumerate(self.layers))
        return f"{self.__class__.__name__}(\n{lines}\n)"
