"""Model files: weights plus the recipe that rebuilds them, saved and loaded safely.

The notebook saved with `torch.save(model)`, which pickles the whole module:
loading such a file imports and runs whatever classes and functions it names,
so a model file could run any code. Here a file holds only tensors and plain
values (the state dict, the recipe, a training record), is loaded with
`torch.load(weights_only=True)`, which refuses everything else, and is
checked against the architecture its recipe describes before use.
"""

import io
import os
import pickle
import pickletools
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import UserError
from .files import read_regular_file, regular_file_size
from .model import DigitClassifier
from .recipe import Recipe, RecipeError

FORMAT = "mlp_core.checkpoint/1"
MAX_FILE_BYTES = 200 * 1024 * 1024  # far above any model the recipe form allows


class ModelFileError(UserError, ValueError):
    """A model file is unreadable, unsafe or not a model; the message says which."""


@dataclass
class Checkpoint:
    model: DigitClassifier  # on the CPU, in eval mode
    recipe: Recipe
    record: dict  # epochs, test_accuracy, seconds, device, date, version

    @property
    def test_accuracy(self) -> float | None:
        return self.record.get("test_accuracy")


def save_checkpoint(
    path,
    model: torch.nn.Module,
    recipe: Recipe,
    record: dict | None = None,
    overwrite: bool = True,
) -> Path:
    """Write atomically: a temporary file in the same folder, then os.replace.

    A crash or full disk midway leaves the previous file untouched. With overwrite=False an
    existing file is never replaced (FileExistsError), even by a save racing this one.
    """
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "recipe": recipe.to_dict(),
        "record": dict(record or {}),
    }
    return write_atomically(path, payload, overwrite)


def write_atomically(path, payload: dict, overwrite: bool = True) -> Path:
    """torch.save a dict of tensors and plain values to a temporary file, then move it in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and fails if the name is taken
            os.unlink(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


CORRUPT = "The model file is truncated or corrupt, or not a PyTorch file at all."


CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"}


def _asks_for_code(data: bytes) -> bool:
    """Does a bare pickle import or call anything? Reads opcodes only; runs nothing."""
    try:
        return any(op.name in CODE_OPCODES for op, _, _ in pickletools.genops(io.BytesIO(data)))
    except Exception:  # not a pickle at all
        return False


def _refusal(e: Exception, data: bytes) -> str:
    """Why the safe unpickler said no: a pickled module, code, or just broken bytes."""
    text = str(e)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found is None and not _asks_for_code(data):
        return CORRUPT
    name = found.group(1) if found else "a Python object"
    if "torch.nn.modules" in text or "DigitClassifier" in text or "Module" in name:
        return (
            "This file holds a whole pickled model (saved the notebook's way, torch.save(model)); "
            "loading it would run code, so it is refused. Save model.state_dict() instead."
        )
    return (
        f"This file is not a plain weights file: it asks to load {name}, which could run code, "
        "so it was refused and nothing in it was run."
    )


def load_checkpoint(source) -> Checkpoint:
    """Load a model file (path or bytes) safely, or raise ModelFileError."""
    return _checked(read_tensors(source, MAX_FILE_BYTES))


def read_tensors(source, max_bytes: int):
    """torch.load a file (path or bytes) of at most max_bytes with weights_only=True, which
    runs no code; anything else is a ModelFileError naming what was wrong."""
    if isinstance(source, bytes):
        data = source
    else:  # a regular file only, its size checked before a byte is read
        data = read_regular_file(source, max_bytes, ModelFileError, "model file")
    if len(data) > max_bytes:
        raise ModelFileError(
            f"The model file is larger than {max_bytes / 2**20:g} MB, too large to be one of ours."
        )
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": we answer with our own sentence
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ModelFileError(_refusal(e, data)) from None
    except MemoryError:
        raise ModelFileError(
            "The server has too little memory free to load this model now."
        ) from None
    except Exception:  # torch's readers fed broken bytes raise almost anything (struct.error...)
        raise ModelFileError(CORRUPT) from None


def _checked(obj) -> Checkpoint:
    """Validate a loaded payload against the architecture its recipe describes."""
    not_ours = "This file is not an mlp_core model file (no state dict and recipe inside)."
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ModelFileError(not_ours)
    fields, state, record = obj.get("recipe"), obj.get("state_dict"), obj.get("record") or {}
    if not all(isinstance(part, dict) for part in (fields, state, record)):
        raise ModelFileError(not_ours)
    try:
        recipe = Recipe.from_dict(fields).validate()
    except (TypeError, RecipeError) as e:
        raise ModelFileError(f"The model file's recipe is not valid: {e}") from None
    acc = record.get("test_accuracy")  # shown as a percentage: it must be one
    if acc is not None and not (isinstance(acc, (int, float)) and 0 <= acc <= 1):
        raise ModelFileError("The model file's test accuracy is not a number from 0 to 1.")
    model = DigitClassifier(recipe.hidden)
    load_checked(model, state, "a DigitClassifier")
    return Checkpoint(model.eval(), recipe, record)


def load_checked(model: torch.nn.Module, state: dict, what: str) -> None:
    """Load a state dict into model after checking its keys, shapes and finite float values."""
    expected = {k: v.shape for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    if set(got) != set(expected) or len(state) != len(expected):
        raise ModelFileError(f"The model file's weights do not match {what}.")
    for k, shape in expected.items():
        if got[k] != tuple(shape):
            raise ModelFileError(
                f"The model file's {k} has shape {list(got[k])}, expected {list(shape)}."
            )
        if not state[k].is_floating_point() or not torch.isfinite(state[k]).all():
            raise ModelFileError(f"The model file's {k} holds NaN, infinite or non-float values.")
    model.load_state_dict(state)


@dataclass(frozen=True)
class Summary:
    """What a model chooser shows: the recipe and the test accuracy, read without the weights."""

    recipe: Recipe
    test_accuracy: float | None


def read_summary(path) -> Summary:
    """The recipe and accuracy stored in a model file, without reading its weights.

    The file is memory-mapped (`mmap=True`): the small pickle is unpickled safely
    (`weights_only=True`) and the tensors are never touched, so this costs the same for a
    1 MB and a 150 MB file. It proves nothing about the weights: load_checkpoint does.
    """
    regular_file_size(path, MAX_FILE_BYTES, ModelFileError, "model file")  # no FIFO, no device
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        raise ModelFileError(CORRUPT) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ModelFileError("This file is not an mlp_core model file.")
    try:
        recipe = Recipe.from_dict(obj.get("recipe")).validate()
    except (TypeError, AttributeError, RecipeError) as e:
        raise ModelFileError(f"The model file's recipe is not valid: {e}") from None
    acc = (obj.get("record") or {}).get("test_accuracy")
    if not (acc is None or (isinstance(acc, (int, float)) and 0 <= acc <= 1)):
        acc = None
    return Summary(recipe, acc)
