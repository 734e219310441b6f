"""The learning-rate finder (fastai's classic): try every rate once, keep none of it.

A callback on the one `Learner.fit` (fastbook chapter 19): for a few hundred batches the
learning rate grows exponentially from tiny to huge while the loss is recorded. At first
nothing happens (too small), then the loss falls fast (good rates), then it explodes (too
large) and the callback cancels the fit. A good learning rate sits where the loss falls
fastest, well before the explosion. The weights and the optimizer's state are restored.
"""

import copy
import math
from dataclasses import dataclass

import torch

from .learner import Callback, CancelFitException, DivergenceGuard, Learner, OneCycle


@dataclass
class LRFinderResult:
    lrs: list[float]
    losses: list[float]  # smoothed
    suggestion: float  # where the smoothed loss falls fastest

    @property
    def rounded(self) -> float:
        """The suggestion in two significant digits, as people type it: 0.0016."""
        return float(f"{self.suggestion:.2g}")


class LRFinder(Callback):
    """Set the rate before each batch, record the smoothed loss after it, cancel on explosion."""

    order = -20  # before DivergenceGuard: an exploding loss ends the scan, it is not a failure

    def __init__(
        self, start_lr: float = 1e-6, end_lr: float = 10.0, num_it: int = 200,
        stop_factor: float = 4.0, beta: float = 0.9,
    ):  # fmt: skip
        self.start_lr, self.end_lr, self.num_it = start_lr, end_lr, num_it
        self.stop_factor, self.beta = stop_factor, beta

    def lr_at(self, i: int) -> float:
        """The rate of batch `i`: start_lr to end_lr, evenly spaced on a log scale."""
        return self.start_lr * (self.end_lr / self.start_lr) ** (i / max(1, self.num_it - 1))

    def before_fit(self, learn):
        opt = learn.opt
        self.saved = (
            copy.deepcopy(learn.model.state_dict()),
            {k: copy.deepcopy(v) for k, v in vars(opt).items() if k != "params"},  # lr too
        )
        self.lrs, self.losses, self.best = [], [], math.inf
        self.smoother = Smoother(self.beta)
        opt.lr = self.lr_at(0)

    def after_batch(self, learn):
        if not math.isfinite(learn.loss) or learn.loss > DivergenceGuard.limit:
            raise CancelFitException
        smooth = self.smoother(learn.loss)
        self.lrs.append(learn.opt.lr)
        self.losses.append(smooth)
        self.best = min(self.best, smooth)
        if smooth > self.stop_factor * self.best or len(self.lrs) == self.num_it:
            raise CancelFitException  # exploded (larger rates only get worse), or done
        learn.opt.lr = self.lr_at(len(self.lrs))  # for the next batch

    def after_fit(self, learn):
        weights, opt_state = self.saved
        learn.model.load_state_dict(weights)
        for k, v in opt_state.items():
            setattr(learn.opt, k, v)
        learn.opt.zero_grad()

    def result(self) -> LRFinderResult:
        return LRFinderResult(self.lrs, self.losses, suggest(self.lrs, self.losses))


def lr_find(learn: Learner, **kwargs) -> LRFinderResult:
    """Scan learning rates on `learn`'s data (kwargs: LRFinder's); `learn` comes back as it was.

    For the scan only, the LRFinder replaces any OneCycle schedule (both would set the rate)
    and the test split is set aside (a scan is not scored).
    """
    finder = LRFinder(**kwargs)
    cbs, test = learn.cbs, learn.test
    learn.cbs = sorted(
        [cb for cb in cbs if not isinstance(cb, OneCycle)] + [finder], key=lambda cb: cb.order
    )
    learn.test = None
    try:
        learn.fit(math.ceil(finder.num_it / len(learn.train)))
    finally:
        learn.cbs, learn.test = cbs, test
    return finder.result()


def suggest(lrs: list[float], losses: list[float]) -> float:
    """The rate where the smoothed loss falls fastest (per unit of log lr), before its minimum."""
    if len(lrs) < 3:
        return lrs[0] if lrs else 1e-3
    end = min(range(len(losses)), key=losses.__getitem__) + 1
    log_lr = torch.tensor(lrs[:end]).log()
    loss = torch.tensor(losses[:end])
    if end < 3:
        return lrs[0]
    slope = torch.gradient(loss, spacing=(log_lr,))[0]  # d loss / d log lr
    return float(lrs[int(slope.argmin())])


class Smoother:
    """An exponential moving average, corrected for its start at zero (what fastai plots).

    Each new value moves the average by (1 - beta) of its distance; dividing by
    1 - beta**n undoes the pull towards the 0 it starts from. The learning-rate finder
    feeds it one loss at a time; `smooth` runs it over a whole curve.
    """

    def __init__(self, beta: float):
        self.beta, self.avg, self.n = beta, 0.0, 0

    def __call__(self, x: float) -> float:
        self.avg = self.beta * self.avg + (1 - self.beta) * x
        self.n += 1
        return self.avg / (1 - self.beta**self.n)


def smooth(values: list[float], beta: float) -> list[float]:
    """Every value of a curve smoothed by one Smoother."""
    s = Smoother(beta)
    return [s(v) for v in values]
