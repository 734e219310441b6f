"""Looking inside the network: what it learned, and why it gave an answer.

The notebook says the network learns to "weight each pixel for each of the
possible digits". Each unit of the first Linear layer holds 784 weights, one
per pixel: drawn as a 28x28 picture they are the templates it matches
images against. These functions turn a model into such pictures and numbers;
they never train and never touch the UI.
"""

import numpy as np
import torch

from .learner import Callback
from .model import DigitClassifier


def weight_images(model: DigitClassifier, n: int = 32) -> torch.Tensor:
    """The first `n` units' weights as images: (n, 28, 28) on the CPU."""
    w = model.linears()[0].weight.detach().cpu()  # (784, units)
    n = min(n, w.shape[1])
    return w[:, :n].T.reshape(n, 28, 28)


def diverging_rgb(values: torch.Tensor, scale: float | None = None) -> np.ndarray:
    """Map values to colours: negative blue, zero white, positive red. (..., 3) uint8.

    `scale` is the value drawn at full colour (default: the largest |value|).
    """
    v = values.detach().cpu().float()
    scale = float(scale or v.abs().max().clamp_min(1e-12))
    t = (v / scale).clamp(-1, 1).unsqueeze(-1)  # (..., 1) in [-1, 1]
    white = torch.ones(3)
    red, blue = torch.tensor([0.70, 0.09, 0.17]), torch.tensor([0.13, 0.40, 0.67])
    rgb = torch.where(t >= 0, white + t * (red - white), white - t * (blue - white))
    return (rgb * 255).round().to(torch.uint8).numpy()


def tile(images: np.ndarray, cols: int = 8, pad: int = 1, fill: int = 160) -> np.ndarray:
    """Lay out (n, h, w, 3) uint8 pictures in rows of `cols`, with `pad`-pixel grey gaps.

    Returns (rows * (h + pad) - pad, cols * (w + pad) - pad, 3) uint8; unused cells stay grey.
    """
    n, h, w = images.shape[:3]
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    grid = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, 3), fill, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = img
    return grid


def template_grid(templates: torch.Tensor, cols: int = 8, pad: int = 1) -> np.ndarray:
    """(n, 28, 28) weights as one picture: each in diverging colours scaled to its own range.

    Scaled one by one so that a unit with small weights still shows its pattern.
    """
    return tile(np.stack([diverging_rgb(t) for t in templates]), cols, pad)


def weight_grid(model: DigitClassifier, n: int = 32, cols: int = 8, pad: int = 1) -> np.ndarray:
    """One picture of the first `n` unit templates: (rows * 29 - 1, cols * 29 - 1, 3) uint8."""
    return template_grid(weight_images(model, n), cols, pad)


def grey_rgb(images: torch.Tensor) -> np.ndarray:
    """Pixels in [0, 1] (or uint8) as MNIST shows them, white ink on black: (..., 3) uint8."""
    x = images.detach().cpu()
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float().clamp(0, 1)
    return (x.unsqueeze(-1).expand(*x.shape, 3) * 255).round().to(torch.uint8).numpy()


def saliency_overlay(x: torch.Tensor, sal: torch.Tensor) -> np.ndarray:
    """The digit in light grey on white, its saliency painted over it: (28, 28, 3) uint8.

    Each pixel blends towards its diverging colour (red: pushed the answer up, blue:
    pushed it down) by how large its saliency is, so ink that hardly mattered stays grey.
    """
    x = x.detach().cpu().reshape(28, 28).float()
    sal = sal.detach().cpu().reshape(28, 28).float()
    scale = float(sal.abs().max())
    paper = (1 - 0.3 * x).unsqueeze(-1).expand(28, 28, 3)  # white paper, light grey ink
    if scale == 0:
        return (paper * 255).round().to(torch.uint8).numpy()
    colour = torch.from_numpy(diverging_rgb(sal, scale)).float() / 255  # (28, 28, 3)
    a = (sal.abs() / scale).sqrt().unsqueeze(-1)  # (28, 28, 1): sqrt lifts the middle values
    return ((paper * (1 - a) + colour * a) * 255).round().to(torch.uint8).numpy()


@torch.no_grad()
def activations(model: DigitClassifier, x: torch.Tensor) -> list[torch.Tensor]:
    """The output of every ReLU for one image: e.g. [(256,), (64,)]."""
    model.eval()
    out, h = [], x.reshape(1, 28, 28).to(next(model.parameters()).device)
    for layer in model.main.layers:
        h = layer(h)
        if type(layer).__name__ == "ReLU":
            out.append(h[0].cpu())
    return out


def saliency(model: DigitClassifier, x: torch.Tensor, target: int | None = None) -> torch.Tensor:
    """Which pixels drove the answer: d(logit of `target`)/d(pixel) times the pixel. (28, 28).

    The gradient says how much each pixel would move the `target` logit
    (default: the predicted digit); multiplying by the input keeps the pixels
    that actually carry ink, so a blank image gives zeros everywhere.
    """
    model.eval()
    x = x.reshape(1, 28, 28).detach().to(next(model.parameters()).device).requires_grad_()
    logits = model(x)  # (1, 10)
    target = int(logits.argmax()) if target is None else target
    (grad,) = torch.autograd.grad(logits[0, target], x)
    return (grad * x)[0].detach().cpu()  # (28, 28): gradient x input


def top_units(
    model: DigitClassifier, x: torch.Tensor, target: int | None = None, k: int = 5
) -> list[tuple[int, float]]:
    """The `k` first-layer units that pushed the `target` logit up the most.

    A unit's contribution is its activation times the logit's gradient with
    respect to it (exact for the last layer, a first-order estimate deeper in).
    Returns (unit index, contribution) pairs, largest first; none for a linear model.
    """
    if not model.hidden:
        return []  # 784 -> 10 directly: the only units are the ten scores
    model.eval()
    first = model.linears()[0]
    h = first(x.reshape(1, 784).to(first.weight.device)).clamp_min(0)  # (1, units)
    h = h.detach().requires_grad_()
    rest = model.main.layers[3:]  # after Flatten, Linear, ReLU
    out = h
    for layer in rest:
        out = layer(out)
    target = int(out.argmax()) if target is None else target
    (grad,) = torch.autograd.grad(out[0, target], h)
    contrib = (grad * h)[0].detach().cpu()  # (units,)
    vals, idx = contrib.topk(min(k, len(contrib)))
    return [(int(i), float(v)) for i, v in zip(idx, vals)]


def hardest(probs: torch.Tensor, labels: torch.Tensor, k: int = 24) -> list[tuple[int, float]]:
    """Indices of the `k` images whose true label got the lowest probability, with it."""
    p_true = probs[torch.arange(len(labels)), labels]  # (N,)
    vals, idx = p_true.topk(min(k, len(labels)), largest=False)
    return [(int(i), float(v)) for i, v in zip(idx, vals)]


class WeightWatch(Callback):
    """Publishes the first layer's templates and every layer's weight and gradient norms.

    Templates refresh every `every` batches and at each epoch's end (so a
    viewer sees structure emerge during the run), with "weights_step", the
    batches done when they were taken; norms are recorded per epoch,
    gradient norms averaged over the epoch's batches (on the captured CUDA loop, over
    the batches whose gradients it still held when their losses were read).
    """

    def __init__(self, publish, n: int = 32, every: int = 50):
        self.publish, self.n, self.every = publish, n, every  # publish(key, value)

    def before_fit(self, learn):
        self.history: list[dict] = []
        self._publish_weights(learn)
        self.publish("norms", [])

    def before_epoch(self, learn):
        self.grad_sq = [0.0] * len(learn.model.linears())  # device tensors once added to
        self.batches = 0

    def after_batch(self, learn):
        # gradients are still there: the optimizer steps, zero_grad runs before the next
        # backward. The captured loop fires after_batch for a chunk of losses at once, when
        # only the last step's gradients exist: it marks which (grads_fresh).
        if getattr(learn, "grads_fresh", True):
            for i, lin in enumerate(learn.model.linears()):
                if lin.weight.grad is not None:  # summed on the device: no wait for a GPU
                    self.grad_sq[i] = self.grad_sq[i] + lin.weight.grad.detach().pow(2).sum()
            self.batches += 1
        if learn.iter % self.every == 0:
            self._publish_weights(learn)

    def after_epoch(self, learn):
        for i, lin in enumerate(learn.model.linears()):
            self.history.append({
                "epoch": learn.epoch + 1,
                "layer": f"Linear {i + 1} ({lin.in_features}->{lin.out_features})",
                "weight norm": float(lin.weight.detach().norm()),
                "grad norm": (float(self.grad_sq[i]) / max(1, self.batches)) ** 0.5,
            })  # fmt: skip
        self._publish_weights(learn)
        self.publish("norms", list(self.history))

    def _publish_weights(self, learn):
        self.publish("weights", weight_images(learn.model, self.n))
        self.publish("weights_step", learn.step)  # batches done when they were taken
