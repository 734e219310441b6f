"""Optimizers written by hand: step 5 of learning, *step the weights*.

After `loss.backward()` every parameter's `.grad` points uphill; an optimizer
moves each parameter a little the other way. Each class here matches its
`torch.optim` twin step for step (see tests/test_optim.py). (The captured CUDA
step runs the same updates on all weights at once: mlp_core/fast/device_state.py.)
"""

from collections.abc import Iterable

import torch


class BasicOptim:
    """The notebook's optimizer, plain gradient descent: `p -= lr * grad`."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float):
        self.params, self.lr = list(params), lr

    @torch.no_grad()
    def step(self) -> None:
        for p in self.params:
            if p.grad is not None:
                p.add_(p.grad, alpha=-self.lr)  # p -= lr * grad

    def zero_grad(self) -> None:
        """Forget the last gradients: PyTorch adds new ones to whatever `.grad` holds."""
        for p in self.params:
            p.grad = None


class SGD(BasicOptim):
    """Gradient descent with momentum and weight decay (as `torch.optim.SGD`).

    Momentum keeps a running direction, `buf = momentum * buf + grad`, so steps
    build up speed along a consistent slope and noisy batches cancel out.
    Weight decay adds `wd * p` to the gradient, pulling weights towards zero.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.momentum, self.weight_decay = momentum, weight_decay
        self.bufs: list[torch.Tensor | None] = [None] * len(self.params)

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p if self.weight_decay else p.grad
            if self.momentum:
                buf = self.bufs[i]
                # the first step starts the running direction at the gradient itself
                self.bufs[i] = g = g.clone() if buf is None else buf.mul_(self.momentum).add_(g)
            p.add_(g, alpha=-self.lr)  # p -= lr * g


class Adam(BasicOptim):
    """Adam: momentum on the gradient, scaled per weight by its recent size.

    `m` averages gradients, `v` averages squared gradients; dividing by
    `sqrt(v)` gives every weight a step of about `lr`, whatever its gradient's
    scale. The bias corrections undo the zero start of both averages.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.t = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        size = self.lr / c1  # step size with m's bias corrected
        for p, m, v in zip(self.params, self.m, self.v, strict=False):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p if self.weight_decay else p.grad
            m.lerp_(g, 1 - b1)  # m = b1 * m + (1 - b1) * g
            v.mul_(b2).addcmul_(g, g, value=1 - b2)  # v = b2 * v + (1 - b2) * g^2
            denom = (v.sqrt() / c2**0.5).add_(self.eps)
            p.addcdiv_(m, denom, value=-size)  # p -= lr / c1 * m / (sqrt(v / c2) + eps)


OPTIMIZERS = ("basic", "sgd", "adam")


def make_optimizer(name: str, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
    """Build an optimizer by the recipe's name: `basic`, `sgd` or `adam`."""
    if name == "basic":
        return BasicOptim(params, lr)
    if name == "sgd":
        return SGD(params, lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return Adam(params, lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}")
