"""Recipe: every choice that defines a training run, declared once.

Each field carries its help text (the notebook's explanation), its choices or bounds and
its label; the command line's flags (`cli.add_recipe_flags`), the dashboard's form
(`ui/recipe_form.py`) and `Recipe.validate` are all made from these declarations, so a new
field is one edit here. A model file stores the recipe, so a run can always be repeated.
"""

import math
import re
from dataclasses import asdict, dataclass, field, fields, replace

from .augment import STROKES_SHARE
from .errors import UserError
from .optim import OPTIMIZERS

INITS = ("notebook", "kaiming")
SCHEDULES = ("constant", "onecycle")
MAX_HIDDEN_LAYERS = 8
MAX_UNITS = 8192  # per hidden layer


class RecipeError(UserError, ValueError):
    """A recipe field holds a value that cannot train; the message says which and why."""


def setting(default, label: str, help: str, **rule):
    """A recipe field: its default, form label, help text and `rule` (see validate_field).

    rule keys: choices, names (choice -> shown name), low, high (open_low: low itself is
    refused; a float's high always is), must (the sentence's condition), too_high (the
    sentence past `high`), called (the sentence's name, if not the label), step (the form's
    increment), strict (out of bounds is a command-line usage error: torch cannot take it),
    form (False: the command line's only; the dashboard's form and links leave it at its
    default).
    """
    return field(default=default, metadata={"label": label, "help": help, **rule})


@dataclass
class Recipe:
    hidden: tuple[int, ...] = setting(
        (256, 64), "Hidden layer sizes",  # 784 -> 256 -> 64 -> 10 as in the notebook
        "Units in each hidden layer between the 784 pixels and the 10 digit scores: "
        "256, 64 is the notebook's 784 → 256 → 64 → 10; empty, a linear model 784 → 10.",
        low=1, high=MAX_UNITS,
    )  # fmt: skip
    init: str = setting(
        "kaiming", "Initialisation",
        "Step 1, initialise the weights: 'notebook' draws randn × 0.1 as its Linear does; "
        "'kaiming' scales them to each layer's input size so signals keep their size.",
        choices=INITS,
    )  # fmt: skip
    optimizer: str = setting(
        "adam", "Optimizer",
        "Step 5, step the weights: 'basic' is the notebook's p -= lr × grad; 'sgd' adds "
        "momentum; 'adam' also scales each weight's step by its recent gradients.",
        choices=tuple(OPTIMIZERS),
        names={"basic": "basic (the notebook's BasicOptim)", "sgd": "sgd (with momentum)"},
    )  # fmt: skip
    # the device is checked against this machine by devices.resolve_device
    device: str = setting(
        "cpu", "Device",
        "Where the maths runs: cpu, cuda, cuda:N or mps; the notebook picks a GPU (cuda) "
        "whenever there is one.",
    )  # fmt: skip
    lr: float = setting(
        0.002, "Learning rate",
        "How far each step moves the weights against their gradients: too small and the "
        "loss barely falls, too large and it explodes.",
        low=0.0, high=math.inf, open_low=True, must="a positive number", step=0.001,
    )  # fmt: skip
    schedule: str = setting(
        "onecycle", "Schedule",
        "'constant' keeps the learning rate fixed, as the notebook does; 'onecycle' warms "
        "it up, then lowers it to almost 0 to settle into a minimum.",
        choices=SCHEDULES,
    )  # fmt: skip
    momentum: float = setting(
        0.9, "Momentum",
        "sgd only: how much of the previous step carries into the next, so steps gather "
        "speed down a steady slope and noisy batches cancel out.",
        low=0.0, high=1.0, must="in [0, 1)", step=0.05,
    )  # fmt: skip
    weight_decay: float = setting(
        1e-4, "Weight decay",
        "sgd and adam: pull every weight a little towards zero at each step, which "
        "discourages over-fitting; 0 turns it off.",
        low=0.0, high=1.0, must="in [0, 1)", step=1e-4,
    )  # fmt: skip
    # a batch also holds at most the training images: validate(n_train)
    batch_size: int = setting(
        128,
        "Batch size",
        "Images per mini-batch, so per gradient step; the notebook suggests 32, 64 or 128 "
        "(bigger batches need more GPU memory).",
        low=1,
        must="a whole number of at least 1",
    )  # fmt: skip
    epochs: int = setting(
        40, "Epochs",
        "Passes over the 60,000 training images; after each one the model is tested on "
        "the 10,000 test images it never trains on.",
        low=1, high=1000, must="a whole number of at least 1",
        too_high="Epochs above 1000 are more than this app will run.",
    )  # fmt: skip
    # torch.manual_seed takes no more than 2**63 - 1 here: strict
    seed: int = setting(
        0,
        "Seed",
        "Fixes the starting weights and the shuffling of the batches: the same seed gives "
        "the same run (on the CPU).",
        low=0,
        high=2**63 - 1,
        must="a whole number from 0 to 2^63 - 1",
        strict=True,
    )  # fmt: skip
    augment: bool = setting(
        True, "Augment the training images",
        "Shift each training image by up to 2 pixels and turn it by up to 10 degrees, "
        "anew every epoch, so the network learns digits rather than exact pixels.",
        called="Augment",
    )  # fmt: skip
    strokes: bool = setting(
        False, "Thicken strokes one way",
        f"Thicken the upright strokes of {STROKES_SHARE / 2:.0%} of the training images and "
        f"the level ones of another {STROKES_SHARE / 2:.0%}, by a pixel on each side, anew "
        "every epoch, as a typeface's stems and a broad pen draw them: printed digits read "
        "better, handwritten numbers no better.",
        called="Thicken strokes",
    )  # fmt: skip
    # the command line's only (`form=False`): cutting takes minutes before the first epoch
    cut_numbers: int = setting(
        0, "Numbers cut into digits",
        "Also learn from the whole digits cut out of this many numbers of training digits, "
        "photographed and cut as Predict's number reader cuts a picture (about 3 digits a "
        "number; 30-50 s per 1,000 numbers on a 2-core CPU); 0: MNIST's own pictures alone.",
        low=0, high=100_000, must="a whole number from 0 to 100000", form=False,
    )  # fmt: skip

    def __post_init__(self):
        self.hidden = tuple(self.hidden)

    def validate(self, n_train: int | None = None) -> "Recipe":
        """Raise RecipeError with one sentence if a field is nonsense; return self.

        `n_train`: the training images the run will see (a batch cannot be larger).
        """
        for f in fields(self):
            validate_field(f, getattr(self, f.name))
        if n_train is not None and self.batch_size > n_train:
            raise RecipeError(
                f"Batch size {self.batch_size} is larger than the {n_train} training images."
            )
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
        h = "-".join(map(str, self.hidden)) or "linear"
        if len(h) > 40:  # a file name is made of this: keep it short for any depth
            h = f"{self.hidden[0]}-...-{self.hidden[-1]}x{len(self.hidden)}"
        aug = (" aug" if self.augment else "") + (" strokes" if self.strokes else "")
        cut = f" cut{self.cut_numbers}" if self.cut_numbers else ""
        return f"{h} {self.optimizer} lr{self.lr:g} bs{self.batch_size} {self.epochs}ep{aug}{cut}"


FORM = tuple(f.name for f in fields(Recipe) if f.metadata.get("form", True))  # the form's
# fields: all but the command line's only
LINKED = tuple(n for n in FORM if n != "device")  # a link's fields: the device is where this
# server runs, not part of the recipe shared with a class; what the form does not show a
# link does not fill
MAX_LINK_VALUE = 100  # characters: longer values in a link are refused unread
# the largest whole number a browser's number field holds exactly (JavaScript's
# Number.MAX_SAFE_INTEGER): the form could not show a larger one from a link
MAX_LINK_WHOLE = 2**53 - 1


def to_query(recipe: Recipe) -> dict[str, str]:
    """The recipe as a link's query parameters, exact: `from_query` gives it back."""
    out = {}
    for f in fields(Recipe):
        if f.name in LINKED:
            v = getattr(recipe, f.name)
            if f.type == tuple[int, ...]:
                out[f.name] = "-".join(map(str, v))
            elif f.type is bool:
                out[f.name] = "true" if v else "false"
            else:
                out[f.name] = repr(v) if f.type is float else str(v)
    return out


def from_query(params, base: Recipe) -> tuple[Recipe, list[str]]:
    """A recipe from a link's query parameters (hostile text), and the names refused.

    Each field declared in LINKED is parsed by its declared type and checked by its rule;
    a missing field keeps `base`'s value, a bad one too (its name is returned).
    """
    got, bad = {}, []
    for f in fields(Recipe):
        if f.name not in LINKED or f.name not in params:
            continue
        text = params[f.name]
        try:
            if not isinstance(text, str) or len(text) > MAX_LINK_VALUE:
                raise ValueError
            v = _parse(f, text.strip())
            validate_field(f, v)
            if whole(v) and not -MAX_LINK_WHOLE <= v <= MAX_LINK_WHOLE:
                raise ValueError(text)
        except (ValueError, RecipeError):
            bad.append(f.name)
            continue
        got[f.name] = v
    return replace(base, **got), bad


def _parse(f, text: str):
    """A link's text as `f`'s type; ValueError for anything else (hidden "-5-3" included:
    sizes are digits between single dashes or commas, never signs)."""
    if f.type == tuple[int, ...]:
        if not text:
            return ()  # a linear model
        sizes = [n.strip() for n in re.split("[-,]", text)]
        if not all(re.fullmatch("[0-9]+", n) for n in sizes):
            raise ValueError(text)
        return tuple(int(n) for n in sizes)
    if f.type is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(text)
        return text.lower() == "true"
    if f.type is int:
        if not re.fullmatch("-?[0-9]+", text):  # not "1_000", "+5" or other scripts' digits
            raise ValueError(text)
        return int(text)
    if f.type is float:
        return float(text)
    return text


def whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_field(f, v) -> None:
    """Check one field's value against its declaration; RecipeError with one sentence."""
    m = f.metadata
    label, low, high = m["label"], m.get("low"), m.get("high")
    if f.type == tuple[int, ...]:  # hidden sizes
        if not all(whole(n) and n >= low for n in v):  # () is a linear model: 784 -> 10
            raise RecipeError(f"Hidden sizes must be positive whole numbers, got {v!r}.")
        if any(n > high for n in v):
            raise RecipeError(f"Hidden sizes above {high} units are too large for this app.")
        if len(v) > MAX_HIDDEN_LAYERS:
            raise RecipeError(
                f"At most {MAX_HIDDEN_LAYERS} hidden layers, got {len(v)}: "
                "an MLP this deep learns MNIST no better, only slower."
            )
    elif "choices" in m:
        if v not in m["choices"]:
            raise RecipeError(f"{label} must be one of {', '.join(m['choices'])}, got {v!r}.")
    elif f.type is bool:
        if not isinstance(v, bool):
            raise RecipeError(f"{m.get('called', label)} must be true or false, got {v!r}.")
    elif f.type in (int, float):
        if not (whole(v) or (f.type is float and isinstance(v, float))):
            raise RecipeError(f"{label} must be {m['must']}, got {v!r}.")
        below = low is not None and (v <= low if m.get("open_low") else v < low)
        if below or (f.type is float and not v < high):  # `not <`: NaN fails too
            raise RecipeError(f"{label} must be {m['must']}, got {v!r}.")
        if high is not None and v > high:
            raise RecipeError(m.get("too_high") or f"{label} must be {m['must']}, got {v!r}.")
