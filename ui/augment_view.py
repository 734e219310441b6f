"""What augmentation does to a training picture: a few of them, random warps of each and
the same pictures with thicker strokes."""

import streamlit as st
import torch

from mlp_core import load_mnist
from mlp_core.augment import STROKES_SHARE, random_affine, thicker
from mlp_core.data import to_float
from mlp_core.insight import grey_rgb, tile

from .format import enlarge
from .recipe_form import shipped_recipe

AUGMENT_SHOWN = 8  # training pictures in the augmentation preview, each with 3 random warps


def show_augmentation() -> None:
    """What augmentation does: a few training pictures, random warps of each, and each with
    its upright and its level strokes thicker."""
    with st.expander("What does augmenting do to a training picture?", icon=":material/shuffle:"):
        seed = st.session_state.setdefault("train_augment_seed", 0)
        images = to_float(load_mnist(True, download=False).images[:AUGMENT_SHOWN])  # (8, 28, 28)
        warps = random_affine(images.repeat(3, 1, 1), torch.Generator().manual_seed(seed))
        shown = tile(grey_rgb(images), cols=AUGMENT_SHOWN, pad=2)
        st.image(enlarge(shown, 3), caption="The first training pictures, as they are")
        grid = tile(grey_rgb(warps), cols=AUGMENT_SHOWN, pad=2)
        st.image(
            enlarge(grid, 3),
            caption="Three random warps of each: shifted by up to 2 pixels, turned by up to "
            "10 degrees",
        )
        st.caption(
            "Each epoch the network sees every training picture warped anew. The label stays "
            "the same, so it learns the digit, not its exact pixels: the shipped model was "
            "trained this way."
        )
        strokes = torch.cat([thicker(images, 1, 0), thicker(images, 0, 1)])  # (16, 28, 28)
        st.image(
            enlarge(tile(grey_rgb(strokes), cols=AUGMENT_SHOWN, pad=2), 3),
            caption="Thicker strokes: the upright ones, then the level ones",
        )
        st.caption(
            f"With **Thicken strokes one way**, each epoch {STROKES_SHARE / 2:.0%} of the "
            f"pictures get their upright strokes a pixel thicker on each side and another "
            f"{STROKES_SHARE / 2:.0%} their level ones, as a typeface's stems and a broad pen "
            "draw them. Printed digits then read better, handwritten numbers no better: the "
            f"shipped model learnt {'with' if shipped_recipe().strokes else 'without'} it."
        )
        st.button(
            "Warp again",
            key="train_augment_again",
            icon=":material/refresh:",
            on_click=lambda: st.session_state.update(train_augment_seed=seed + 1),
        )
