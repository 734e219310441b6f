"""Learner: the training loop, with callbacks for everything a caller watches.

`fit` runs steps 2-7 of learning by gradient descent: predict a mini-batch,
measure the loss, compute gradients, step the weights, repeat, stop. It fires
five events to callback objects (`before_fit`, `before_epoch`, `after_batch`,
`after_epoch`, `after_fit`): progress bars, live charts, the NaN guard and a
stop button all hang off these, and the loop knows nothing about any of them.
"""

import math
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .data import Batches, Split, to_float
from .errors import UserError

EVENTS = ("before_fit", "before_epoch", "after_batch", "after_epoch", "after_fit")


class CancelFitException(Exception):
    """Raise from a callback to end `fit` cleanly (after_fit still fires)."""


class DivergedError(UserError, RuntimeError):
    """The loss became NaN or infinite: the weights are garbage from here on."""


class Callback:
    """Base callback: override any of EVENTS; each receives the Learner."""

    order = 0  # lower runs first

    def before_fit(self, learn: "Learner") -> None: ...
    def before_epoch(self, learn: "Learner") -> None: ...
    def after_batch(self, learn: "Learner") -> None: ...
    def after_epoch(self, learn: "Learner") -> None: ...
    def after_fit(self, learn: "Learner") -> None: ...


class DivergenceGuard(Callback):
    """Stop with DivergedError the moment the loss is NaN, infinite or exploding.

    Guessing at random costs ln(10) = 2.3; a loss above `limit` means the
    steps have thrown the weights far off (often every ReLU is dead and the
    logits are huge), and nothing useful will come of the run.
    """

    order = -10  # before anything records the bad value
    limit = 1000.0

    def after_batch(self, learn):
        if not math.isfinite(learn.loss) or learn.loss > self.limit:
            raise DivergedError(
                f"Training diverged: the loss became {learn.loss} at epoch {learn.epoch + 1}, "
                f"batch {learn.iter + 1}. Lower the learning rate and try again."
            )


class OneCycle(Callback):
    """Warm the learning rate up from lr/25 to lr over the first 25% of steps,
    then anneal it to almost 0 along a cosine: big steps while the loss is
    high, small ones to settle into a minimum at the end."""

    def __init__(self, lr: float, pct_start: float = 0.25):
        self.lr, self.pct_start = lr, pct_start

    def lr_at(self, t: float) -> float:
        """Learning rate at fraction `t` in [0, 1] of the run."""

        def cos(a, b, p):
            return b + (a - b) * (1 + math.cos(math.pi * p)) / 2

        if t < self.pct_start:
            return cos(self.lr / 25, self.lr, t / self.pct_start)
        return cos(self.lr, self.lr / 1e4, (t - self.pct_start) / (1 - self.pct_start))

    def lr_tensor(self, t: torch.Tensor) -> torch.Tensor:
        """`lr_at` for a 0-dim tensor `t`, in tensor ops only: a step captured as a CUDA graph
        cannot call Python, so it computes its rate on the device (fast/graph_step.py)."""

        def cos(a, b, p):
            return b + (a - b) * (1 + torch.cos(math.pi * p)) / 2

        pct = self.pct_start
        warm = cos(self.lr / 25, self.lr, t / pct)
        anneal = cos(self.lr, self.lr / 1e4, (t - pct) / (1 - pct))
        return torch.where(t < pct, warm, anneal)  # both branches computed, one kept: no Python if

    def before_fit(self, learn):
        self.total = learn.epochs * len(learn.train)
        learn.opt.lr = self.lr_at(0.0)

    def after_batch(self, learn):
        learn.opt.lr = self.lr_at(min(1.0, learn.step / self.total))


class Learner:
    """Holds a model, its data, optimizer and loss, and trains it."""

    def __init__(
        self,
        model: torch.nn.Module,
        train: Batches,
        opt,
        test: Split | None = None,
        loss_func=F.cross_entropy,
        cbs: Sequence[Callback] = (),
        device: str | torch.device = "cpu",
    ):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.train, self.opt, self.loss_func = train, opt, loss_func
        self.test = test.to(self.device) if test is not None else None
        self.cbs = sorted([DivergenceGuard(), *cbs], key=lambda cb: cb.order)
        self.epoch = self.iter = self.step = 0
        self.epochs, self.loss, self.test_accuracy = 0, float("nan"), None
        self.epochs_done, self.seconds, self.stopped = 0, 0.0, False

    def __call__(self, event: str) -> None:
        for cb in self.cbs:
            getattr(cb, event)(self)

    def one_batch(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        """One step of gradient descent on one mini-batch (steps 2 to 5)."""
        self.batch_size = len(yb)
        loss = self.loss_func(self.model(xb), yb)  # (B, 10) logits vs (B,) labels -> scalar
        self.opt.zero_grad()  # else .grad would add this batch's gradient to the last one's
        loss.backward()
        self.opt.step()
        self.loss = loss.item()
        self.step += 1

    def fit(self, epochs: int) -> "Learner":
        """Train for `epochs` passes over the training set; test after each one."""
        self.epochs, self.stopped, self.step = epochs, False, 0
        start = time.perf_counter()
        try:
            self("before_fit")
            for epoch in range(epochs):
                self.epoch = epoch
                self.model.train()
                self("before_epoch")
                for i, (xb, yb) in enumerate(self.train):
                    self.iter = i
                    self.one_batch(xb, yb)
                    self.seconds = time.perf_counter() - start
                    self("after_batch")
                if self.test is not None:
                    self.test_accuracy = self.validate()
                self.epochs_done = self.epoch + 1
                self.seconds = time.perf_counter() - start
                self("after_epoch")
        except CancelFitException:
            self.stopped = True
        self.seconds = time.perf_counter() - start
        self("after_fit")
        return self

    @torch.no_grad()
    def validate(self, split: Split | None = None, batch_size: int = 2000) -> float:
        """Exact accuracy over a whole split: correct answers / images.

        (The notebook averaged per-batch accuracies, which over-weights a
        small last batch.)
        """
        split = (split or self.test).to(self.device)
        self.model.eval()
        correct = 0
        for i in range(0, len(split), batch_size):
            xb = to_float(split.images[i : i + batch_size])
            correct += (self.model(xb).argmax(1) == split.labels[i : i + batch_size]).sum().item()
        return correct / len(split)
