"""The models folder: names that cannot leave it and never replace a model, and its quota.

A server's models folder is shared by everyone who trains: a name a visitor types goes
through `safe_model_path`, a run's model gets a readable name from its recipe
(`model_filename`) made unique (`unused_path`), and a run or a "Save as" that would pass the
folder's quota (`check_quota`, MLP_MAX_MODELS and MLP_MAX_MODELS_MB) is refused first.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import ModelFileError, load_checkpoint, save_checkpoint
from ..recipe import Recipe


def safe_model_path(name: str, models_dir="models") -> Path:
    """A path for a user-typed model name that cannot leave `models_dir`.

    Only letters, digits, '.', '_' and '-' survive; leading dots go (no hidden
    files, no '..'); '.pt' is added.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(name)).name.removesuffix(".pt"))
    stem = stem.lstrip(".")[:80] or "model"
    root = Path(models_dir).resolve()
    path = (root / f"{stem}.pt").resolve()
    if path.parent != root:  # belt and braces: the regex already removed separators
        raise ModelFileError(f"The name {name!r} cannot be used for a model file.")
    return path


def save_as(source, name: str, models_dir="models") -> Path:
    """Copy the model file `source` under a user-typed name inside `models_dir`.

    The name goes through safe_model_path, and an existing model is never replaced.
    """
    if not str(name).strip():
        raise ModelFileError("Type a name for the model first.")
    path = safe_model_path(name, models_dir)
    ckpt = load_checkpoint(source)  # only a valid model file is copied
    try:
        return save_checkpoint(path, ckpt.model, ckpt.recipe, ckpt.record, overwrite=False)
    except FileExistsError:
        raise ModelFileError(
            f"A model named {path.stem} already exists; choose another name."
        ) from None


def model_filename(recipe: Recipe, test_accuracy: float | None) -> str:
    """A readable file name from recipe and accuracy: `256-64_adam_lr0.002_..._acc0.9855.pt`,
    never longer than 120 characters whatever the recipe."""
    acc = f"_acc{test_accuracy:.4f}" if test_accuracy is not None else ""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", recipe.describe())[:100] + acc + ".pt"


def unused_path(path) -> Path:
    """`path`, or `name-2.pt`, `name-3.pt`... if taken: a new model never replaces another."""
    path = Path(path)
    for i in range(2, 10_000):
        if not path.exists():
            return path
        path = path.with_name(f"{path.stem.rsplit('-', 1)[0] if i > 2 else path.stem}-{i}.pt")
    raise ModelFileError("Too many models share this name; choose another one.")


@dataclass(frozen=True)
class Quota:
    """How much the models folder may hold (MLP_MAX_MODELS, MLP_MAX_MODELS_MB override)."""

    files: int = 100
    bytes: int = 1024 * 2**20

    @classmethod
    def from_env(cls) -> "Quota":
        return cls(
            int(os.environ.get("MLP_MAX_MODELS") or cls.files),
            int(float(os.environ.get("MLP_MAX_MODELS_MB") or cls.bytes / 2**20) * 2**20),
        )


def check_quota(models_dir, adding: int = 0, quota: Quota | None = None) -> None:
    """Raise ModelFileError if the folder cannot take one more model of `adding` bytes."""
    quota = quota or Quota.from_env()
    files = [p for p in Path(models_dir).glob("*.pt") if p.is_file()]
    used = sum(p.stat().st_size for p in files)
    if len(files) + 1 > quota.files or used + adding > quota.bytes:
        raise ModelFileError(
            f"The models folder is full ({len(files)} models, {used / 2**20:,.0f} MB; it holds "
            f"at most {quota.files} models and {quota.bytes / 2**20:,.0f} MB). Whoever runs "
            "this server can delete models from it."
        )
