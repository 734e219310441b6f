"""Optimizers written by hand: step 5 of learning, *step the weights*.

After `loss.backward()` every parameter's `.grad` points uphill; an optimizer
moves each parameter a little the other way. Each class here matches its
`torch.optim` twin step for step (see tests/test_optim.py).

`to_device_state()` turns what changes from step to step (the learning rate,
Adam's step count, the momentum buffers) into tensors on the parameters'
device, so that a step captured as a CUDA graph reads their current values at
every replay instead of numbers frozen at capture time (see graph_step.py).
`step()` takes either: a Python number takes the one-pass in-place ops, a
tensor the ops that accept one. `foreach_step()` is the same update on all
parameters at once, one multi-tensor kernel per operation (`torch._foreach_*`,
as torch.optim's foreach optimizers do): in a graph, every kernel costs a
couple of microseconds however small it is, so six small updates become one.
"""

from collections.abc import Iterable

import torch


def descend(p: torch.Tensor, d: torch.Tensor, lr) -> None:
    """p -= lr * d in place, in one pass over p; `lr` a number or a 0-dim tensor on p's device."""
    if isinstance(lr, torch.Tensor):
        p.addcmul_(d, lr, value=-1)  # alpha= takes only numbers; addcmul multiplies by a tensor
    else:
        p.add_(d, alpha=-lr)


class BasicOptim:
    """The notebook's optimizer, plain gradient descent: `p -= lr * grad`."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float):
        self.params, self.lr = list(params), lr

    @torch.no_grad()
    def step(self) -> None:
        for p in self.params:
            if p.grad is not None:
                descend(p, p.grad, self.lr)  # p -= lr * grad

    def zero_grad(self) -> None:
        """Forget the last gradients: PyTorch adds new ones to whatever `.grad` holds."""
        for p in self.params:
            p.grad = None

    def to_device_state(self) -> None:
        """Hold the learning rate as a 0-dim tensor beside the parameters (float32)."""
        device = self.params[0].device
        self.lr = torch.as_tensor(self.lr, dtype=torch.float32, device=device).clone()

    @torch.no_grad()
    def foreach_step(self) -> None:
        """`step` on all parameters at once (every one has a gradient; after to_device_state)."""
        grads = [p.grad for p in self.params]
        torch._foreach_sub_(self.params, torch._foreach_mul(grads, self.lr))  # p -= lr * grad


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
            descend(p, g, self.lr)

    def to_device_state(self) -> None:
        """Also allocate the momentum buffers now: a captured step can only update tensors in
        place. Zeros give the same first step: momentum * 0 + grad is the gradient itself."""
        super().to_device_state()
        if self.momentum:
            self.bufs = [
                torch.zeros_like(p) if b is None else b for p, b in zip(self.params, self.bufs)
            ]

    @torch.no_grad()
    def foreach_step(self) -> None:
        grads = [p.grad for p in self.params]
        if self.weight_decay:
            grads = torch._foreach_add(grads, self.params, alpha=self.weight_decay)  # g + wd * p
        if self.momentum:
            torch._foreach_mul_(self.bufs, self.momentum)
            torch._foreach_add_(self.bufs, grads)  # buf = momentum * buf + g
            grads = self.bufs
        torch._foreach_sub_(self.params, torch._foreach_mul(grads, self.lr))  # p -= lr * g


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
        self.t += 1  # an int, or in place on a 0-dim tensor (to_device_state)
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t  # numbers, or 0-dim tensors computed on the device
        size = self.lr / c1  # step size with m's bias corrected
        for p, m, v in zip(self.params, self.m, self.v, strict=False):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p if self.weight_decay else p.grad
            m.lerp_(g, 1 - b1)  # m = b1 * m + (1 - b1) * g
            v.mul_(b2).addcmul_(g, g, value=1 - b2)  # v = b2 * v + (1 - b2) * g^2
            denom = (v.sqrt() / c2**0.5).add_(self.eps)
            if isinstance(size, torch.Tensor):  # value= takes only numbers
                p.addcdiv_(m * size, denom, value=-1)
            else:
                p.addcdiv_(m, denom, value=-size)

    def to_device_state(self) -> None:
        """Also count steps in a 0-dim float64 tensor, so the bias corrections 1 - beta**t are
        computed on the device at every step (float64: 0.999**t in float32 is off by 1e-5)."""
        super().to_device_state()
        device = self.params[0].device
        self.t = torch.as_tensor(self.t, dtype=torch.float64, device=device).clone()

    @torch.no_grad()
    def foreach_step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t  # 0-dim float64 tensors
        grads = [p.grad for p in self.params]
        if self.weight_decay:
            grads = torch._foreach_add(grads, self.params, alpha=self.weight_decay)  # g + wd * p
        torch._foreach_lerp_(self.m, grads, 1 - b1)  # m = b1 * m + (1 - b1) * g
        torch._foreach_mul_(self.v, b2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - b2)  # v = b2 * v + (1 - b2) * g^2
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_div_(denom, c2.sqrt().float())  # float32 scalars, as the lists hold
        torch._foreach_add_(denom, self.eps)
        steps = torch._foreach_div(self.m, denom)
        torch._foreach_mul_(steps, (self.lr / c1).float())
        torch._foreach_sub_(self.params, steps)  # p -= lr / c1 * m / (sqrt(v / c2) + eps)


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
