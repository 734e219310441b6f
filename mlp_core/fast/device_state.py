"""The optimizers' state as tensors on the device, and their step on all weights at once.

A step captured as a CUDA graph (graph_step.py) replays the numbers it was captured with:
a learning rate held as a Python float would stay at its value at capture time. So
`to_device_state(opt)` turns what changes from step to step (the learning rate, Adam's
step count, the momentum buffers) into tensors on the parameters' device, updated in
place; `foreach_step(opt)` is then the optimizer's `step` on all parameters at once, one
multi-tensor kernel per operation (`torch._foreach_*`, as torch.optim's foreach
optimizers do): in a graph every kernel costs a couple of microseconds however small it
is, so six small updates become one. Each matches `torch.optim` (tests/test_optim.py).
"""

import torch

from ..optim import SGD, Adam, BasicOptim


def to_device_state(opt: BasicOptim) -> None:
    """Hold `opt`'s changing numbers as tensors beside its parameters, in place from now on."""
    device = opt.params[0].device
    # the learning rate: a 0-dim float32 tensor that a schedule rewrites in place
    opt.lr = torch.as_tensor(opt.lr, dtype=torch.float32, device=device).clone()
    if isinstance(opt, SGD) and opt.momentum:
        # allocated now: a captured step can only update tensors in place. Zeros give the
        # same first step: momentum * 0 + grad is the gradient itself
        opt.bufs = [torch.zeros_like(p) if b is None else b for p, b in zip(opt.params, opt.bufs)]
    if isinstance(opt, Adam):
        # steps counted in a 0-dim float64 tensor, so the bias corrections 1 - beta**t are
        # computed on the device at every step (float64: 0.999**t in float32 is off by 1e-5)
        opt.t = torch.as_tensor(opt.t, dtype=torch.float64, device=device).clone()


@torch.no_grad()
def foreach_step(opt: BasicOptim) -> None:
    """`opt.step()` on all parameters at once (every one has a gradient; after
    to_device_state)."""
    if isinstance(opt, Adam):
        _adam(opt)
        return
    grads = [p.grad for p in opt.params]
    if isinstance(opt, SGD):
        if opt.weight_decay:
            grads = torch._foreach_add(grads, opt.params, alpha=opt.weight_decay)  # g + wd * p
        if opt.momentum:
            torch._foreach_mul_(opt.bufs, opt.momentum)
            torch._foreach_add_(opt.bufs, grads)  # buf = momentum * buf + g
            grads = opt.bufs
    torch._foreach_sub_(opt.params, torch._foreach_mul(grads, opt.lr))  # p -= lr * g


def _adam(opt: Adam) -> None:
    opt.t += 1
    b1, b2 = opt.betas
    c1, c2 = 1 - b1**opt.t, 1 - b2**opt.t  # 0-dim float64 tensors
    grads = [p.grad for p in opt.params]
    if opt.weight_decay:
        grads = torch._foreach_add(grads, opt.params, alpha=opt.weight_decay)  # g + wd * p
    torch._foreach_lerp_(opt.m, grads, 1 - b1)  # m = b1 * m + (1 - b1) * g
    torch._foreach_mul_(opt.v, b2)
    torch._foreach_addcmul_(opt.v, grads, grads, value=1 - b2)  # v = b2 * v + (1 - b2) * g^2
    denom = torch._foreach_sqrt(opt.v)
    torch._foreach_div_(denom, c2.sqrt().float())  # float32 scalars, as the lists hold
    torch._foreach_add_(denom, opt.eps)
    steps = torch._foreach_div(opt.m, denom)
    torch._foreach_mul_(steps, (opt.lr / c1).float())
    torch._foreach_sub_(opt.params, steps)  # p -= lr / c1 * m / (sqrt(v / c2) + eps)
