"""The learning-rate finder (fastai's classic): try every rate once, keep none of it.

Train for a few hundred batches while the learning rate grows exponentially
from tiny to huge, recording the loss. At first nothing happens (too small),
then the loss falls fast (good rates), then it explodes (too large). A good
learning rate sits where the loss falls fastest, well before the explosion.
The weights and the optimizer's state are restored afterwards.
"""

import copy
import math
from dataclasses import dataclass

import torch

from .learner import Learner


@dataclass
class LRFinderResult:
    lrs: list[float]
    losses: list[float]  # smoothed
    suggestion: float  # where the smoothed loss falls fastest


def lr_find(
    learn: Learner, start_lr: float = 1e-6, end_lr: float = 10.0, num_it: int = 200,
    stop_factor: float = 4.0, beta: float = 0.9,
) -> LRFinderResult:  # fmt: skip
    """Scan learning rates on `learn`'s data; its model and optimizer come back untouched."""
    model, opt = learn.model, learn.opt
    saved_weights = copy.deepcopy(model.state_dict())
    saved_opt = {k: copy.deepcopy(v) for k, v in vars(opt).items() if k != "params"}
    saved_lr = opt.lr
    lrs, losses, avg, best = [], [], 0.0, math.inf
    try:
        model.train()
        batches = iter(())
        for i in range(num_it):
            try:
                xb, yb = next(batches)
            except StopIteration:  # start another pass over the data
                batches = iter(learn.train)
                xb, yb = next(batches)
            opt.lr = start_lr * (end_lr / start_lr) ** (i / max(1, num_it - 1))
            learn.one_batch(xb, yb)
            if not math.isfinite(learn.loss):
                break
            avg = beta * avg + (1 - beta) * learn.loss
            smooth = avg / (1 - beta ** (i + 1))  # undo the zero start of the average
            lrs.append(opt.lr)
            losses.append(smooth)
            best = min(best, smooth)
            if smooth > stop_factor * best:  # exploded: larger rates only get worse
                break
    finally:
        model.load_state_dict(saved_weights)
        for k, v in saved_opt.items():
            setattr(opt, k, v)
        opt.lr = saved_lr
        opt.zero_grad()
    return LRFinderResult(lrs, losses, suggest(lrs, losses))


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
