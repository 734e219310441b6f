"""Data augmentation on whole batches, on the training device.

Showing the network each digit slightly shifted and turned, a new way every
epoch, teaches it that those changes don't change the digit: it stops
memorising exact pixel positions. One affine warp per image, done for the
whole batch at once with `affine_grid` + `grid_sample` (no PIL, no loop).
"""

import math

import torch
import torch.nn.functional as F


def random_affine(
    x: torch.Tensor, generator: torch.Generator, max_shift: float = 2.0, max_degrees: float = 10.0
) -> torch.Tensor:
    """Shift each image by up to `max_shift` pixels and rotate it by up to `max_degrees`.

    The random amounts are drawn from `generator` where it lives: the eager loop
    passes a CPU generator (repeatable with a seed, whatever the device), a
    captured step one on the GPU (fast/graph_step.py: a graph cannot copy new numbers
    from the CPU at each replay). The warp runs where `x` is. (B, 28, 28) -> (B, 28, 28).
    """
    b, h, w = x.shape
    g, dev = generator, generator.device
    angle = (torch.rand(b, generator=g, device=dev) * 2 - 1) * math.radians(max_degrees)  # (B,)
    shift = (torch.rand(b, 2, generator=g, device=dev) * 2 - 1) * max_shift  # (B, 2) pixels
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack(  # (B, 2, 3): rotation, then translation in [-1, 1] units
        [
            torch.stack([cos, -sin, shift[:, 0] * 2 / w], 1),
            torch.stack([sin, cos, shift[:, 1] * 2 / h], 1),
        ],
        1,
    ).to(x.device, x.dtype)
    grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)  # (B, 28, 28, 2)
    out = F.grid_sample(x.unsqueeze(1), grid, padding_mode="zeros", align_corners=False)
    return out.squeeze(1)  # (B, 28, 28); background stays 0, as in MNIST
