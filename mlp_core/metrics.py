"""Scoring a model on a whole split: accuracy, per-class accuracy, confusion matrix."""

import torch
import torch.nn.functional as F

from .data import Split, to_float


@torch.no_grad()
def predict_probs(
    model: torch.nn.Module, images: torch.Tensor, batch_size: int = 2000
) -> torch.Tensor:
    """Ten probabilities per image for uint8 (N, 28, 28) or float images, (N, 10) on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        xb = images[i : i + batch_size].to(device)
        xb = to_float(xb) if xb.dtype == torch.uint8 else xb.float()
        out.append(F.softmax(model(xb.reshape(-1, 28, 28)), dim=1).cpu())  # (B, 10)
    return torch.cat(out) if out else torch.empty(0, 10)


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, n: int = 10) -> torch.Tensor:
    """(n, n) counts: row = true digit, column = predicted digit."""
    return torch.bincount(labels * n + preds, minlength=n * n).reshape(n, n)


def evaluate(model: torch.nn.Module, split: Split) -> dict:
    """Accuracy, per-class accuracy and confusion matrix as plain Python lists."""
    preds = predict_probs(model, split.images).argmax(1)
    cm = confusion_matrix(preds, split.labels.cpu())
    per_class = (cm.diag().float() / cm.sum(1).clamp_min(1)).tolist()
    return {
        "accuracy": cm.diag().sum().item() / max(1, len(split)),
        "per_class_accuracy": per_class,
        "confusion_matrix": cm.tolist(),
        "n": len(split),
    }


def per_class_accuracy(cm: torch.Tensor) -> torch.Tensor:
    """(n,) share of each true digit predicted right, from a confusion matrix (rows = true)."""
    return cm.diag().float() / cm.sum(1).clamp_min(1)


def select_indices(
    labels: torch.Tensor,
    preds: torch.Tensor | None = None,
    digit: int | None = None,
    wrong_only: bool = False,
    seed: int | None = None,
) -> torch.Tensor:
    """Indices of the images to browse: one digit or all, all or only the misclassified.

    In index order, or shuffled reproducibly when a seed is given.
    """
    keep = torch.ones(len(labels), dtype=torch.bool)  # (N,)
    if digit is not None:
        keep &= labels == digit
    if wrong_only:
        if preds is None:
            raise ValueError("wrong_only needs the predictions")
        keep &= preds != labels
    idx = keep.nonzero().flatten()
    if seed is not None:
        idx = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed))]
    return idx
