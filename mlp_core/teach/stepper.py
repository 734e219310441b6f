"""Step through learning: one mini-batch at a time, every number of the seven steps kept.

A `Stepper` holds a small network of a visitor's own, its optimizer and its batches. Each
`step` is `Learner.one_batch`, the very step `fit` takes, with what a learner wants to see
recorded around it: the batch and the network's guesses before, one picture's activations,
each picture's share of the loss, the gradients, the change the optimizer made, and the
guesses after. Plain torch, on the CPU; a caller prices what it may cost (the `price`
callback, e.g. the web server's budget) and it never touches the UI.
"""

import functools
import inspect
import math
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ..data import Batches, Split
from ..insight import activations
from ..layers import Linear, ReLU, Sequential
from ..learner import Learner
from ..model import DigitClassifier
from ..optim import OPTIMIZERS, SGD, Adam, BasicOptim, make_optimizer
from ..recipe import Recipe, RecipeError

MAX_BATCH = 128  # pictures per step: all of them are drawn on the page
MAX_LR = 100.0  # far past divergence already; above it is a typo, not a lesson
TEST_SLICE = 1000  # test pictures the running accuracy is measured on (the first ones)
MAX_POINTS = 2000  # loss points kept; beyond, neighbours are averaged
UNITS_SHOWN = 4  # first-layer units whose gradient and change are drawn
ACCURACY_EVERY = 500  # steps between accuracy checks within one epoch's click

# the notebook's architecture, the notebook's optimizer; a learning rate that moves visibly
DEFAULT = Recipe(
    hidden=(256, 64), init="kaiming", optimizer="basic", lr=0.1, schedule="constant",
    weight_decay=0.0, batch_size=16, epochs=1, augment=False, seed=0,
)  # fmt: skip


def check_recipe(recipe: Recipe, n_train: int) -> Recipe:
    """`recipe` if a stepper can take it (batch size 1 to MAX_BATCH), else RecipeError."""
    b = recipe.batch_size
    if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= MAX_BATCH:
        raise RecipeError(f"The batch size must be a whole number from 1 to {MAX_BATCH}.")
    return recipe.validate(n_train)


def check_lr(lr) -> float:
    """A learning rate a visitor sent, as a float, or RecipeError with one sentence."""
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr <= MAX_LR:
        raise RecipeError(f"The learning rate must be a number above 0 and at most {MAX_LR:g}.")
    return float(lr)


@dataclass
class Record:
    """Everything one step showed, in the order the code computes it (tensors on the CPU)."""

    step: int  # steps done, this one included
    images: torch.Tensor  # (B, 28, 28) uint8: 1. the batch
    labels: torch.Tensor  # (B,)
    probs_before: torch.Tensor  # (B, 10)
    pick: int  # 2. predict: the picture whose activations are kept
    acts: list[torch.Tensor]  # each hidden layer's ReLU outputs for it: [(256,), (64,)]
    losses_before: torch.Tensor  # (B,) 3. loss: each picture's cross-entropy
    loss_before: float  # their mean, the loss `one_batch` computed
    grad_norms: list[float]  # 4. gradients: each Linear's weight-gradient norm
    units: list[int]  # first-layer units drawn, the ones with the largest gradients
    unit_grads: torch.Tensor  # (k, 28, 28) their weights' gradients, one per pixel
    unit_changes: torch.Tensor  # (k, 28, 28) 5. step: their weights' change
    largest: list[float]  # each Linear's largest |weight change|
    typical: list[float]  # and its median |weight change|
    optimizer: str
    lr: float
    probs_after: torch.Tensor  # (B, 10) 6. after: the same batch, a fresh forward pass
    losses_after: torch.Tensor  # (B,)
    loss_after: float

    @property
    def shares(self) -> torch.Tensor:
        """Each picture's share of the batch's loss (sums to 1)."""
        return self.losses_before / self.losses_before.sum().clamp_min(1e-12)


class Stepper:
    """A visitor's network, stepped by `Learner.one_batch` one mini-batch at a time."""

    def __init__(
        self, recipe: Recipe, train: Split, test: Split, weights: dict | None = None,
        price: Callable[[Recipe], object] = lambda recipe: None,
    ):  # fmt: skip
        """`price(recipe)` raises (a UserError) if `recipe` costs too much; asked again
        whenever the batch size changes."""
        self.price = price
        price(check_recipe(recipe, len(train)))
        self.recipe = recipe
        torch.manual_seed(recipe.seed)  # fresh weights from the seed, as build_learner draws
        model = DigitClassifier(recipe.hidden, recipe.init)
        if weights is not None:  # copied from a model file (already checked on loading)
            model.load_state_dict(weights)
        self.start = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.train = train
        self.test = Split(test.images[:TEST_SLICE], test.labels[:TEST_SLICE])
        opt = make_optimizer(recipe.optimizer, model.parameters(), recipe.lr, recipe.momentum)
        self.learn = Learner(model, self._batches(recipe.batch_size), opt, cbs=())
        self._restart()

    def _batches(self, batch_size: int) -> Batches:
        self.generator = torch.Generator().manual_seed(self.recipe.seed)
        return Batches(self.train, batch_size, generator=self.generator)

    def _restart(self) -> None:
        self.batches = iter(self.learn.train)
        self.epoch = 0
        self.last: Record | None = None
        self.losses: list[tuple[int, float]] = []  # (step, batch loss before its step)
        self.accuracies = [(0, self.learn.validate(self.test))]  # (step, test-slice accuracy)

    @property
    def model(self) -> DigitClassifier:
        return self.learn.model

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def steps(self) -> int:
        return self.learn.step

    def nbytes(self) -> int:
        """Bytes of tensors this stepper holds: weights, their start, optimizer state."""
        tensors = [*self.model.parameters(), *self.start.values()]
        opt = self.learn.opt
        tensors += [t for t in getattr(opt, "bufs", []) if t is not None]
        tensors += [*getattr(opt, "m", []), *getattr(opt, "v", [])]
        return sum(t.numel() * t.element_size() for t in tensors)

    # -- settings between steps ---------------------------------------------------------

    def set_optimizer(self, name: str, lr) -> None:
        """Use optimizer `name` at `lr` from the next step on; a new optimizer starts with
        empty state (no momentum yet, Adam's averages at zero). RecipeError if either is bad."""
        lr = check_lr(lr)
        if name not in OPTIMIZERS:
            raise RecipeError(f"The optimizer must be one of {', '.join(OPTIMIZERS)}.")
        if name != self.recipe.optimizer:
            params = self.model.parameters()
            self.learn.opt = make_optimizer(name, params, lr, self.recipe.momentum)
        self.learn.opt.lr = lr
        self.recipe = replace(self.recipe, optimizer=name, lr=lr)

    def set_batch_size(self, batch_size) -> None:
        """Draw batches of `batch_size` from the next step on (a new pass over the data)."""
        if batch_size == self.recipe.batch_size:
            return
        recipe = replace(self.recipe, batch_size=batch_size)
        self.price(check_recipe(recipe, len(self.train)))
        self.recipe = recipe
        self.learn.train = self._batches(batch_size)
        self.batches = iter(self.learn.train)

    def reset(self) -> None:
        """Back to the starting weights, a fresh optimizer and the first batch again."""
        self.model.load_state_dict(self.start)
        r = self.recipe
        self.learn.opt = make_optimizer(r.optimizer, self.model.parameters(), r.lr, r.momentum)
        self.learn.step = 0
        self.learn.train = self._batches(r.batch_size)
        self._restart()

    # -- stepping -------------------------------------------------------------------------

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next mini-batch of the pass; a new shuffled pass when this one is done."""
        try:
            return next(self.batches)
        except StopIteration:
            self.batches, self.epoch = iter(self.learn.train), self.epoch + 1
            return next(self.batches)

    def step(self, pick: int = 0) -> Record:
        """One step on the next batch, everything recorded; `pick` a picture of the batch."""
        xb, yb = self.next_batch()  # (B, 28, 28) float, (B,)
        return self.step_on(xb, yb, pick)

    def step_on(self, xb: torch.Tensor, yb: torch.Tensor, pick: int = 0) -> Record:
        """`step` on a given batch (tests compare it with a Learner's one_batch)."""
        if isinstance(pick, bool) or not isinstance(pick, int) or not 0 <= pick < len(yb):
            raise RecipeError(f"The picture to look into must be one of 1 to {len(yb)}.")
        model, linears = self.model, self.model.linears()
        with torch.no_grad():
            logits = model(xb)  # (B, 10)
        acts = activations(model, xb[pick])  # [(units,) per hidden layer]
        before = [lin.weight.detach().clone() for lin in linears]
        self.learn.one_batch(xb, yb)  # steps 2-5, exactly as fit takes them
        grads = [lin.weight.grad.detach().clone() for lin in linears]
        changes = [lin.weight.detach() - w for lin, w in zip(linears, before, strict=True)]
        with torch.no_grad():
            after = model(xb)  # (B, 10): the same pictures, the new weights
        first_grad = grads[0]  # (784, units)
        units = first_grad.norm(dim=0).topk(min(UNITS_SHOWN, first_grad.shape[1])).indices
        record = Record(
            step=self.steps,
            images=(xb * 255).round().to(torch.uint8),
            labels=yb.clone(),
            probs_before=logits.softmax(1),
            pick=pick,
            acts=acts,
            losses_before=F.cross_entropy(logits, yb, reduction="none"),
            loss_before=self.learn.loss,
            grad_norms=[float(g.norm()) for g in grads],
            units=units.tolist(),
            unit_grads=first_grad[:, units].T.reshape(-1, 28, 28),
            unit_changes=changes[0][:, units].T.reshape(-1, 28, 28),
            largest=[float(c.abs().max()) for c in changes],
            typical=[float(c.abs().median()) for c in changes],
            optimizer=self.recipe.optimizer,
            lr=float(self.learn.opt.lr),
            probs_after=after.softmax(1),
            losses_after=F.cross_entropy(after, yb, reduction="none"),
            loss_after=float(F.cross_entropy(after, yb)),
        )
        self._note(record.loss_before)
        self.last = record
        return record

    def run(
        self, n: int, pick: int = 0, chunk: int = 50, go_on: Callable[[], bool] = lambda: True
    ) -> Iterator[int]:
        """Take `n` steps (at most one epoch's), the last one recorded in full; yields the
        steps done after every `chunk`, so a caller can show progress or let others run.
        Between chunks, `go_on()` false ends the run early (still on a full record)."""
        n = max(1, min(n, len(self.learn.train)))
        for i in range(n - 1):
            self.learn.one_batch(*self.next_batch())
            self._note(self.learn.loss)
            if not math.isfinite(self.learn.loss):
                break  # the weights are garbage from here on: the last step shows why
            if (i + 1) % ACCURACY_EVERY == 0:
                self.accuracies.append((self.steps, self.learn.validate(self.test)))
            if (i + 1) % chunk == 0:
                yield i + 1
                if not go_on():
                    break
        self.step(min(pick, self.recipe.batch_size - 1))
        self.accuracies.append((self.steps, self.learn.validate(self.test)))
        yield n

    def _note(self, loss: float) -> None:
        self.losses.append((self.steps, loss))
        if len(self.losses) > MAX_POINTS:  # neighbours averaged: the chart keeps its shape
            pairs = zip(self.losses[0::2], self.losses[1::2], strict=False)
            self.losses = [(b[0], (a[1] + b[1]) / 2) for a, b in pairs]


# -- the code beside each step, read from the running package -----------------------------


@dataclass(frozen=True)
class Code:
    where: str  # how a reader finds it
    text: str  # the lines, dedented


def lines_of(fn, *needles: str) -> Code:
    """The lines of `fn`'s source holding any of `needles` (all of it if none), as it runs."""
    src = textwrap.dedent(inspect.getsource(fn)).rstrip()
    where = f"{inspect.getmodule(fn).__name__.replace('.', '/')}.py: {fn.__qualname__}"
    if not needles:
        return Code(where, src)
    kept = [line for line in src.splitlines() if any(n in line for n in needles)]
    missing = [n for n in needles if not any(n in line for line in kept)]
    if missing:  # the code changed: the page must not show lines that no longer run
        raise LookupError(f"{fn.__qualname__} no longer has {missing}")
    return Code(where, textwrap.dedent("\n".join(kept)))  # their indents kept, relative


@functools.cache  # the source does not change while the server runs: read it once
def code_for(step: str, optimizer: str = "basic") -> list[Code]:
    """The code that computes `step` (batch, predict, loss, gradients, step, after, repeat)."""
    opt = {"basic": BasicOptim, "sgd": SGD, "adam": Adam}[optimizer]
    one = Learner.one_batch
    return {
        "batch": [
            lines_of(
                Batches.__iter__,
                "if self.shuffle",
                "randperm",
                "for i in range",
                "idx = order",
                "xb, yb = self.split.images[idx]",
                "to_float(xb)",
                "yield xb, yb",
            )
        ],
        "predict": [
            lines_of(one, "self.model(xb)"),
            lines_of(Sequential.forward, "for layer", "x = layer(x)"),
            lines_of(Linear.forward, "x @ self.weight"),
            lines_of(ReLU.forward, "torch.relu"),
        ],
        "loss": [lines_of(one, "self.loss_func(")],
        "gradients": [lines_of(one, "zero_grad()", "loss.backward()")],
        "step": [lines_of(one, "self.opt.step()"), lines_of(opt.step)],
        "after": [lines_of(Stepper.step_on, "after = model(xb)", "loss_after=")],
        "repeat": [lines_of(Learner.fit, "for i, (xb, yb)", "self.one_batch(xb, yb)")],
    }[step]


__all__ = ["DEFAULT", "Code", "Record", "Stepper", "check_recipe", "code_for"]
