"""mlp_core: a multi-layer perceptron that learns to read MNIST digits, written to be read."""

__version__ = "0.1.0"

from .checkpoint import (
    Checkpoint,
    ModelFileError,
    load_checkpoint,
    save_checkpoint,
)
from .data import Batches, DataError, Split, load_mnist, mnist_available
from .devices import DeviceError, resolve_device, usable_devices
from .errors import UserError
from .layers import Flatten, Linear, ReLU, Sequential
from .learner import Callback, CancelFitException, DivergedError, Learner, OneCycle
from .lr_finder import LRFinder, lr_find
from .model import DigitClassifier
from .optim import SGD, Adam, BasicOptim, make_optimizer
from .recipe import Recipe, RecipeError
from .train import build_learner, train, training_record

__all__ = [
    "Adam",
    "BasicOptim",
    "Batches",
    "Callback",
    "CancelFitException",
    "Checkpoint",
    "DataError",
    "DeviceError",
    "DigitClassifier",
    "DivergedError",
    "Flatten",
    "Learner",
    "LRFinder",
    "Linear",
    "ModelFileError",
    "OneCycle",
    "ReLU",
    "Recipe",
    "RecipeError",
    "SGD",
    "Sequential",
    "Split",
    "UserError",
    "build_learner",
    "load_checkpoint",
    "load_mnist",
    "lr_find",
    "make_optimizer",
    "mnist_available",
    "resolve_device",
    "save_checkpoint",
    "train",
    "training_record",
    "usable_devices",
]
