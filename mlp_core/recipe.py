"""Recipe: every choice that defines a training run, in one dataclass.

The command line and the dashboard's form both fill a Recipe; a model file
stores it, so a run can always be rebuilt and repeated.
"""

from dataclasses import asdict, dataclass, fields

from .optim import OPTIMIZERS

INITS = ("notebook", "kaiming")
SCHEDULES = ("constant", "onecycle")
MAX_HIDDEN_LAYERS = 8


class RecipeError(ValueError):
    """A recipe field holds a value that cannot train; the message says which and why."""


@dataclass
class Recipe:
    hidden: tuple[int, ...] = (
        256,
        64,
    )  # hidden layer sizes: 784 -> 256 -> 64 -> 10 as in the notebook
    init: str = "kaiming"  # starting weights: 'notebook' (randn * 0.1) or 'kaiming' (He)
    optimizer: str = "adam"  # 'basic' (the notebook's), 'sgd' (with momentum) or 'adam'
    lr: float = 0.002  # learning rate: how far each step moves the weights
    momentum: float = 0.9  # sgd only: how much of the previous step carries over
    weight_decay: float = 1e-4  # sgd/adam: pull every weight a little towards zero each step
    schedule: str = "onecycle"  # 'constant' lr, or 'onecycle': warm up, then anneal to ~0
    batch_size: int = 128  # images per gradient step
    epochs: int = 40  # passes over the 60,000 training images
    augment: bool = True  # shift (<= 2 px) and rotate (<= 10 deg) each training image at random
    seed: int = 0  # fixes initial weights and shuffling: same seed, same run (on CPU)
    device: str = "cpu"  # 'cpu', 'cuda', 'cuda:N' or 'mps'

    def __post_init__(self):
        self.hidden = tuple(self.hidden)

    def validate(self, n_train: int | None = None) -> "Recipe":
        """Raise RecipeError with one sentence if a field is nonsense; return self."""
        h = self.hidden
        if not h or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in h):
            raise RecipeError(f"Hidden sizes must be positive whole numbers, got {h!r}.")
        if any(n > 8192 for n in h):
            raise RecipeError("Hidden sizes above 8192 units are too large for this app.")
        if len(h) > MAX_HIDDEN_LAYERS:
            raise RecipeError(
                f"At most {MAX_HIDDEN_LAYERS} hidden layers, got {len(h)}: "
                "an MLP this deep learns MNIST no better, only slower."
            )
        if self.init not in INITS:
            raise RecipeError(f"Init must be one of {', '.join(INITS)}, got {self.init!r}.")
        if self.optimizer not in OPTIMIZERS:
            raise RecipeError(f"Optimizer must be one of {', '.join(OPTIMIZERS)}.")
        if self.schedule not in SCHEDULES:
            raise RecipeError(f"Schedule must be one of {', '.join(SCHEDULES)}.")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < float("inf")):
            raise RecipeError(f"Learning rate must be a positive number, got {self.lr!r}.")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise RecipeError(f"Momentum must be in [0, 1), got {self.momentum!r}.")
        if not (isinstance(self.weight_decay, (int, float)) and 0 <= self.weight_decay < 1):
            raise RecipeError(f"Weight decay must be in [0, 1), got {self.weight_decay!r}.")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise RecipeError(f"Epochs must be a whole number of at least 1, got {self.epochs!r}.")
        if self.epochs > 1000:
            raise RecipeError("Epochs above 1000 are more than this app will run.")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise RecipeError(
                f"Batch size must be a whole number of at least 1, got {self.batch_size!r}."
            )
        if n_train is not None and self.batch_size > n_train:
            raise RecipeError(
                f"Batch size {self.batch_size} is larger than the {n_train} training images."
            )
        if not isinstance(self.augment, bool):
            raise RecipeError(f"Augment must be true or false, got {self.augment!r}.")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise RecipeError(f"Seed must be a whole number from 0 to 2^63 - 1, got {self.seed!r}.")
        return self

    def to_dict(self) -> dict:
        """Plain types only (lists, not tuples), so a checkpoint loads with weights_only."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        """Rebuild from a dict, ignoring unknown keys (files from newer versions)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def describe(self) -> str:
        """A short human name, e.g. `256-64 sgd lr0.05 bs128 15ep`."""
        h = "-".join(map(str, self.hidden))
        if len(h) > 40:  # a file name is made of this: keep it short for any depth
            h = f"{self.hidden[0]}-...-{self.hidden[-1]}x{len(self.hidden)}"
        aug = " aug" if self.augment else ""
        return f"{h} {self.optimizer} lr{self.lr:g} bs{self.batch_size} {self.epochs}ep{aug}"
