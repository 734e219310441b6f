"""Seconds per epoch: the notebook's pipeline against mlp_core's, same recipe, one run.

The notebook: torchvision's DataLoader with ToTensor (a PIL image per sample),
batch 64, num_workers=1, BasicOptim lr 0.01, 784-256-64-10 with randn * 0.1,
validating on the test split after each epoch as its Learner.fit does.
mlp_core: the same model, optimizer and recipe, augmentation off as in the
notebook, with the whole split on the device as one uint8 tensor: the eager
Learner.fit and, on CUDA, also the step captured as a CUDA graph (mlp_core/fast/graph_step.py).

    python bench/bench_epoch.py [--device cuda] [--epochs 3] [--data-dir DIR] [--json]
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlp_core import BasicOptim, Callback, DigitClassifier, Recipe, build_learner, load_mnist
from mlp_core.data import data_root, mnist_available
from mlp_core.fast import GraphLearner  # noqa: F401  (importing it enables eager=False)


def notebook_epochs(root: str, device: torch.device, epochs: int) -> list[float]:
    """The notebook's section 2 and 3, kept as written (its loop, its per-batch accuracy)."""
    from torch.utils.data import DataLoader
    from torchvision import datasets
    from torchvision.transforms import ToTensor

    train_data = datasets.MNIST(root=root, train=True, transform=ToTensor(), download=False)
    test_data = datasets.MNIST(root=root, train=False, transform=ToTensor(), download=False)
    loaders = {
        "train": DataLoader(train_data, batch_size=64, shuffle=True, num_workers=1),
        "test": DataLoader(test_data, batch_size=64, shuffle=False, num_workers=1),
    }
    torch.manual_seed(0)
    model = DigitClassifier(init="notebook").to(device)
    opt, criterion = BasicOptim(model.parameters(), 0.01), torch.nn.CrossEntropyLoss()
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        epoch_loss = 0.0
        for x, y in loaders["train"]:
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            opt.step()
            epoch_loss += loss.item() * x.size(0)
        with torch.no_grad():
            accs = []
            for x, y in loaders["test"]:
                preds = model(x.to(device)).argmax(1)
                accs.append((preds == y.to(device)).sum().item() / x.size(0))
        times.append(time.perf_counter() - start)
    print(f"  notebook: last test accuracy {sum(accs) / len(accs):.4f}", flush=True)
    return times


class EpochTimer(Callback):
    def before_epoch(self, learn):
        self.start = time.perf_counter()

    def after_epoch(self, learn):
        learn.epoch_times.append(time.perf_counter() - self.start)


def project_epochs(root: str, device: torch.device, epochs: int, eager: bool) -> list[float]:
    # augmentation off, as in the notebook: compare like with like
    recipe = Recipe(init="notebook", optimizer="basic", lr=0.01, batch_size=64, epochs=epochs,
                    schedule="constant", weight_decay=0.0, augment=False,
                    device=str(device))  # fmt: skip
    data = load_mnist(True, root), load_mnist(False, root)
    learn = build_learner(recipe, *data, [EpochTimer()], eager=eager)
    learn.epoch_times = []
    learn.fit(epochs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    data_device = learn.train.split.images.device
    how = "captured" if getattr(learn, "captured", False) else "eager"
    print(f"  mlp_core {how}: last test accuracy {learn.test_accuracy:.4f}; data on {data_device}")
    return learn.epoch_times


def parse_with_mnist(ap: argparse.ArgumentParser) -> argparse.Namespace:
    """Add the flags every benchmark shares (--data-dir, --json), parse, and exit with one
    line if MNIST is not there."""
    ap.add_argument("--data-dir", help="folder holding MNIST/raw (default: $MNIST_ROOT)")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()
    root = data_root(args.data_dir)
    if not mnist_available(root):
        sys.exit(f"error: MNIST not found under {root}; set MNIST_ROOT or --data-dir")
    return args


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or mps (default: cpu)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per pipeline (default: 3)")
    args = parse_with_mnist(ap)
    root = str(data_root(args.data_dir))
    device = torch.device("cuda:0" if args.device == "cuda" else args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    # the first epoch of each pays for warm-up (allocations, kernels): report the median
    nb = statistics.median(notebook_epochs(root, device, args.epochs))
    print(f"notebook pipeline: {nb:.3f} s/epoch", flush=True)
    ours = statistics.median(project_epochs(root, device, args.epochs, eager=True))
    print(f"mlp_core pipeline, eager: {ours:.3f} s/epoch", flush=True)
    print(f"speed-up: {nb / ours:.1f}x")
    figures = {
        "device": f"{device} ({name})",
        "torch": torch.__version__,
        "notebook_s_per_epoch": nb,
        "mlp_core_s_per_epoch": ours,
        "speedup": nb / ours,
    }
    if device.type == "cuda":  # the same recipe, the step captured as a CUDA graph
        captured = statistics.median(project_epochs(root, device, args.epochs, eager=False))
        print(f"mlp_core pipeline, captured: {captured:.3f} s/epoch")
        print(f"speed-up: {nb / captured:.1f}x the notebook's, {ours / captured:.1f}x eager")
        figures |= {"mlp_core_captured_s_per_epoch": captured, "captured_speedup": nb / captured}
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
