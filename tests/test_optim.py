"""Hand-written optimizers match torch.optim step by step (25 steps, each within float32's
rounding)."""

import pytest
import torch
from torch.testing import assert_close

from mlp_core import SGD, Adam, BasicOptim, DigitClassifier
from mlp_core.fast.device_state import foreach_step, to_device_state


def run_pair(make_ours, make_theirs, steps: int = 25) -> None:
    """Train two identical models side by side; after every step the weights must agree.

    Each step starts both models from the same weights (ours copied into theirs), so a step
    is compared with float32's tolerance and rounding never compounds over the steps (other
    CPUs round other ways). The optimizers' own state (momentum, Adam's moments) is never
    copied: it must stay in step by itself, or the weights part after a few steps.
    """
    torch.manual_seed(0)
    m1 = DigitClassifier((16, 8))
    m2 = DigitClassifier((16, 8))
    m2.load_state_dict(m1.state_dict())
    o1, o2 = make_ours(m1.parameters()), make_theirs(m2.parameters())
    g = torch.Generator().manual_seed(1)
    eps = torch.finfo(torch.float32).eps
    for _ in range(steps):
        x, y = torch.rand(32, 28, 28, generator=g), torch.randint(0, 10, (32,), generator=g)
        before = [p.detach().clone() for p in m1.parameters()]
        for m, o in ((m1, o1), (m2, o2)):
            o.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
            o.step()
        for p0, p1, p2 in zip(before, m1.parameters(), m2.parameters()):
            # the updates agree to float32's rounding: of the update itself (rtol), and of
            # the weights it was added to and subtracted from again (atol, a few ulps of w)
            ulps = 4 * eps * float(p0.abs().max())
            assert_close(p1.detach() - p0, p2.detach() - p0, rtol=1.3e-6, atol=ulps)
        with torch.no_grad():
            for p1, p2 in zip(m1.parameters(), m2.parameters()):
                p2.copy_(p1)


def test_basic_optim_is_plain_sgd():
    run_pair(lambda p: BasicOptim(p, 0.1), lambda p: torch.optim.SGD(p, lr=0.1))


@pytest.mark.parametrize("momentum, wd", [(0.9, 0.0), (0.9, 5e-4), (0.0, 1e-2), (0.5, 0.0)])
def test_sgd_matches_torch(momentum, wd):
    run_pair(
        lambda p: SGD(p, 0.05, momentum=momentum, weight_decay=wd),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=momentum, weight_decay=wd),
    )


@pytest.mark.parametrize("lr, wd", [(1e-3, 0.0), (3e-3, 1e-4)])
def test_adam_matches_torch(lr, wd):
    run_pair(
        lambda p: Adam(p, lr, weight_decay=wd),
        lambda p: torch.optim.Adam(p, lr=lr, weight_decay=wd),
    )


def test_zero_grad_sets_none_and_step_moves_against_gradient():
    p = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    opt = BasicOptim([p], lr=0.5)
    (p * torch.tensor([2.0, 4.0])).sum().backward()
    opt.step()
    assert_close(p.data, torch.tensor([0.0, -3.0]))
    opt.zero_grad()
    assert p.grad is None


def on_device(opt):
    """`opt` with lr (Adam: t; SGD: momentum buffers) as tensors, as a captured step uses it."""
    to_device_state(opt)
    return opt


@pytest.mark.parametrize(
    "make_ours, make_theirs",
    [
        (lambda p: BasicOptim(p, 0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
        (
            lambda p: SGD(p, 0.05, momentum=0.9, weight_decay=5e-4),
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4),
        ),
        (
            lambda p: Adam(p, 3e-3, weight_decay=1e-4),
            lambda p: torch.optim.Adam(p, lr=3e-3, weight_decay=1e-4),
        ),
    ],
    ids=["basic", "sgd", "adam"],
)
def test_device_state_steps_still_match_torch(make_ours, make_theirs):
    run_pair(lambda p: Foreach(on_device(make_ours(p))), make_theirs)


class Foreach:
    """Steps `opt` with foreach_step, as the captured training step does."""

    def __init__(self, opt):
        self.opt = opt

    def zero_grad(self):
        self.opt.zero_grad()

    def step(self):
        foreach_step(self.opt)


def test_device_state_is_tensors_updated_in_place():
    opt = on_device(Adam(DigitClassifier((8,)).parameters(), 1e-3))
    lr, t = opt.lr, opt.t
    assert lr.shape == () and lr.dtype == torch.float32 and t.dtype == torch.float64
    for q in opt.params:
        q.grad = torch.ones_like(q)
    p = opt.params[0]
    for _ in range(3):
        foreach_step(opt)
    assert opt.t is t and float(t) == 3.0  # the same tensor, counted on: a graph can read it
    lr.fill_(0.0)  # a new rate between two steps takes effect without touching the optimizer
    before = p.detach().clone()
    foreach_step(opt)
    assert torch.equal(p.detach(), before)
