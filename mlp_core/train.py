"""From a Recipe to a trained model: build the Learner, fit it, describe the run."""

import datetime
import platform

import torch

from .augment import augmentation
from .data import Batches, Split, load_mnist
from .devices import resolve_device
from .learner import Callback, Learner, OneCycle
from .model import DigitClassifier
from .optim import make_optimizer
from .recipe import Recipe, RecipeError

# The speed path (mlp_core.fast, the step captured as a CUDA graph) plugs in here when it
# is imported, as the CLI and the dashboard's service do: the library never imports it.
_fast_learner = None  # device -> its captured Learner class, or None where there is none


def use_fast_learner(pick) -> None:
    """Let build_learner(eager=None) train with `pick(device)`'s Learner class where it
    returns one (mlp_core.fast calls this when imported)."""
    global _fast_learner
    _fast_learner = pick


def build_learner(
    recipe: Recipe,
    train: Split,
    test: Split | None = None,
    cbs: list[Callback] = (),
    eager: bool | None = None,
) -> Learner:
    """A Learner for `recipe`: seeded weights and shuffling, data on the recipe's device.

    `eager`: None (default) picks the fastest loop the device has: with mlp_core.fast
    imported, the step captured as a CUDA graph on CUDA (fast/graph_step.py), else the
    eager loop; True, the eager loop everywhere; False, the graph-ready step everywhere (run
    without a graph off CUDA; needs mlp_core.fast).
    """
    recipe.validate(n_train=len(train))
    device = resolve_device(recipe.device)
    torch.manual_seed(recipe.seed)
    # weights drawn on the CPU (the same start on every device), then moved before the
    # optimizer is built, so that its state (momentum, Adam's averages) lives beside them
    model = DigitClassifier(recipe.hidden, recipe.init).to(device)
    batches = Batches(
        train, recipe.batch_size, device, generator=torch.Generator().manual_seed(recipe.seed),
        augment=augmentation(recipe.augment, recipe.strokes),
    )  # fmt: skip
    opt = make_optimizer(
        recipe.optimizer, model.parameters(), recipe.lr, recipe.momentum, recipe.weight_decay
    )
    cbs = [*cbs, *([OneCycle(recipe.lr)] if recipe.schedule == "onecycle" else [])]
    learner = Learner
    if not eager:
        if _fast_learner is None and eager is False:
            raise RuntimeError("eager=False needs the captured step: import mlp_core.fast first")
        fast = _fast_learner(device, eager is False) if _fast_learner is not None else None
        learner = fast or Learner
    return learner(model, batches, opt, test=test, cbs=cbs, device=device)


def training_record(learn: Learner) -> dict:
    """What a model file says about the run that made it."""
    from . import __version__

    device = learn.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "epochs": learn.epochs_done,
        "test_accuracy": learn.test_accuracy,
        "seconds": round(learn.seconds, 2),
        "device": f"{device} ({name})" if name else str(device),
        "stopped_early": learn.stopped,
        "captured": getattr(learn, "captured", False),  # trained by a CUDA graph's replays
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "version": __version__,
    }


def train(
    recipe: Recipe,
    data_dir=None,
    cbs: list[Callback] = (),
    eager: bool | None = None,
    data: tuple[Split, Split] | None = None,
) -> tuple[Learner, dict]:
    """Load MNIST (or take `data`: training and test splits), train by `recipe`, return the
    Learner and its training record. A recipe with `cut_numbers` needs `data` holding those
    digits: the picture reader cuts them (`vision.compose.with_cut_digits`, as the CLI does)."""
    if recipe.cut_numbers and data is None:
        raise RecipeError(
            f"This recipe learns from digits cut out of {recipe.cut_numbers:,} numbers: "
            "train it with python -m mlp_core train, which cuts them."
        )
    data = data or (load_mnist(True, data_dir), load_mnist(False, data_dir))
    learn = build_learner(recipe, *data, cbs, eager=eager)
    learn.fit(recipe.epochs)
    return learn, training_record(learn)
