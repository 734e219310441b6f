"""What a run will cost before it starts: parameters, memory and time, against limits.

A recipe is a few numbers, but some of them multiply: thirty hidden layers of 8192
units are two billion weights (about 29 GB to train with Adam), and batch 1 for 1000
epochs is sixty million gradient steps (days). A server that trains whatever a form
asks for can be exhausted by one visitor, so every run (and every learning-rate scan)
is priced first and refused with a sentence that gives the estimate.

The prices are estimates from the model's shape, not measurements:
- parameters: each Linear(n_in, n_out) has n_in * n_out weights and n_out biases;
- memory: 4 bytes per parameter for the weights, 4 for their gradients, and the
  optimizer's state (Adam keeps two averages per weight, SGD one momentum buffer, the
  notebook's BasicOptim nothing); activations kept for backward at the batch size;
  the MNIST split held on the device as uint8;
- time: a step costs about 6 floating-point operations per weight per image (2 for
  the forward pass, 4 for backward), plus a fixed overhead for launching its work.
"""

import os
from dataclasses import dataclass

import torch

from ..model import N_CLASSES, N_PIXELS
from ..recipe import Recipe, RecipeError

OPTIMIZER_STATES = {"basic": 0, "sgd": 1, "adam": 2}  # tensors kept per weight
# (floating-point operations per second, seconds of overhead per step), deliberately modest
PACE = {"cpu": (50e9, 1e-3), "cuda": (10e12, 1.5e-3), "mps": (2e12, 1.5e-3)}
TEST_IMAGES = 10_000
CUT_PER_NUMBER = 3  # whole digits cut out of a composed number, about (recipe.cut_numbers)


class BudgetError(RecipeError):
    """A recipe would cost more memory or time than this server allows; says how much."""


@dataclass(frozen=True)
class Limits:
    """The most one run may cost; None means no limit. Read from the environment by
    `Limits.from_env()` (MLP_MAX_PARAMS, MLP_MAX_STEPS, MLP_MAX_MINUTES, MLP_MEMORY_SHARE)."""

    max_params: int | None = 20_000_000  # weights and biases (80 MB as float32)
    max_steps: int | None = 300_000  # gradient steps in one run
    max_minutes: float | None = 120.0  # estimated training time
    memory_share: float = 0.5  # of the memory the device has free now
    cut_numbers: bool = False  # whether a run may cut digits from numbers first (minutes)

    @classmethod
    def from_env(cls) -> "Limits":
        d = cls()
        return cls(
            max_params=_env("MLP_MAX_PARAMS", int, d.max_params),
            max_steps=_env("MLP_MAX_STEPS", int, d.max_steps),
            max_minutes=_env("MLP_MAX_MINUTES", float, d.max_minutes),
            memory_share=_env("MLP_MEMORY_SHARE", float, d.memory_share),
        )


# On the command line the machine is the user's own: only what cannot fit is refused.
CLI_LIMITS = Limits(
    max_params=None, max_steps=None, max_minutes=None, memory_share=0.9, cut_numbers=True
)


def _env(name: str, kind, default):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    if value.strip().lower() == "none":
        return None
    return kind(value)


@dataclass(frozen=True)
class Estimate:
    params: int
    bytes: int  # peak memory on the device
    steps: int
    seconds: float

    def describe(self) -> str:
        return (
            f"{self.params:,} parameters, about {_size(self.bytes)} of memory, "
            f"{self.steps:,} steps, about {_duration(self.seconds)}"
        )


def estimate(recipe: Recipe, n_train: int, steps: int | None = None) -> Estimate:
    """Price `recipe` on `n_train` images (or for `steps` steps, e.g. a learning-rate scan)."""
    sizes = (N_PIXELS, *recipe.hidden, N_CLASSES)
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    batch = min(recipe.batch_size, n_train)
    per_param = 4 * (2 + OPTIMIZER_STATES.get(recipe.optimizer, 2))  # weights, grads, state
    activations = 4 * 3 * batch * sum(sizes)  # outputs, ReLU masks, their gradients
    evaluation = 4 * 2 * 2000 * max(sizes)  # validate's batches of 2000
    data = (n_train + TEST_IMAGES) * N_PIXELS  # uint8 splits on the device
    total_bytes = params * per_param + activations + evaluation + data
    if steps is None:
        steps = recipe.epochs * -(-n_train // batch)
    flops, overhead = PACE.get(torch.device(recipe.device).type, PACE["cpu"])
    seconds = steps * (6 * params * batch / flops + overhead)
    return Estimate(params, total_bytes, steps, seconds)


def free_memory(device: str) -> int:
    """Bytes the device has free now: the GPU's own memory, else the machine's."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.mem_get_info(dev)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check(
    recipe: Recipe, n_train: int, limits: Limits | None = None, steps: int | None = None
) -> Estimate:
    """Return the estimate, or raise BudgetError with one sentence that gives it."""
    limits = limits or Limits.from_env()
    if recipe.cut_numbers and not limits.cut_numbers:
        raise BudgetError(
            f"This recipe first cuts digits out of {recipe.cut_numbers:,} composed numbers, "
            "minutes of work before training; this server trains on MNIST alone. Train it "
            "with python -m mlp_core train --cut-numbers."
        )
    est = estimate(recipe, n_train + CUT_PER_NUMBER * recipe.cut_numbers, steps)
    what = "This recipe" if steps is None else "A learning-rate scan of this recipe"
    if limits.max_params is not None and est.params > limits.max_params:
        raise BudgetError(
            f"{what} has {est.params:,} parameters; this server trains at most "
            f"{limits.max_params:,}. Use fewer or smaller hidden layers."
        )
    spare = int(free_memory(recipe.device) * limits.memory_share)
    if est.bytes > spare:
        raise BudgetError(
            f"{what} needs about {_size(est.bytes)} of memory on {recipe.device}, more than "
            f"the {_size(spare)} it can spare now. Use smaller hidden layers or batches."
        )
    if limits.max_steps is not None and est.steps > limits.max_steps:
        raise BudgetError(
            f"{what} takes {est.steps:,} steps ({recipe.epochs} epochs of "
            f"{est.steps // recipe.epochs:,} batches, about {_duration(est.seconds)}); this "
            f"server runs at most {limits.max_steps:,}. Use a larger batch or fewer epochs."
        )
    if limits.max_minutes is not None and est.seconds > limits.max_minutes * 60:
        raise BudgetError(
            f"{what} would train for about {_duration(est.seconds)} ({est.describe()}); this "
            f"server allows about {_duration(limits.max_minutes * 60)} per run."
        )
    return est


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TB"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days"
