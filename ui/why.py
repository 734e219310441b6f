"""The answer for one picture, and "Why this answer?": what the network saw and did.

Used by the Predict page; everything drawn comes from `mlp_core.insight`.
"""

import numpy as np
import streamlit as st
import torch

from mlp_core.insight import (
    activations,
    diverging_rgb,
    saliency,
    saliency_overlay,
    top_units,
    weight_images,
)
from mlp_core.metrics import predict_probs
from mlp_core.vision import UNSURE, Preprocessed, verdict

from .charts import STRIP_HEIGHT, activation_strip, probability_chart
from .format import enlarge, prediction_line, upscale


def show_prediction(
    model: torch.nn.Module, prep: Preprocessed, key: str, why_open: bool = False
) -> np.ndarray:
    """The answer, its ten probabilities and the 28x28 picture the network saw; returns probs.

    Below them, a "Why this answer?" expander (widget key `key`, open if `why_open`) looks
    inside the network. Its views are computed only while it is open: drawing them costs a
    few times more than the answer itself, too much for many uploads at once.
    """
    probs = predict_probs(model, prep.tensor)[0].numpy()  # (10,)
    left, right = st.columns([1, 2], vertical_alignment="center")
    with left:
        st.image(upscale(prep.preview, 140), caption="What the network sees")
    with right:
        st.markdown(f"#### {prediction_line(probs)}")
        if float(np.max(probs)) < UNSURE:  # say so rather than only print a digit
            st.caption(f"The network is {verdict(probs)}.")
        st.altair_chart(probability_chart(probs), width="stretch")
    why = st.expander(
        "Why this answer?",
        expanded=why_open,
        key=key,
        on_change="rerun",
        icon=":material/psychology:",
    )
    with why:
        if why.open:
            show_why(model, prep.tensor[0], int(np.argmax(probs)))
    return probs


def show_why(model: torch.nn.Module, x: torch.Tensor, digit: int) -> None:
    """Inside the network for one image `x` (28, 28) answered `digit`: activations, the units
    that voted for it and the pixels that drove it, each with one line for a learner."""
    acts = activations(model, x)  # [(256,), (64,)]
    units = top_units(model, x, digit, k=5)  # [(unit, contribution)], largest first
    sal = saliency(model, x, digit)  # (28, 28)
    left, right = st.columns([1, 2], vertical_alignment="center")
    with left:
        st.image(enlarge(saliency_overlay(x, sal), 5), caption="Which ink mattered")
    with right:
        for i, a in enumerate(acts):
            st.markdown(
                f":small[**Hidden layer {i + 1}**: {int((a > 0).sum())} of {len(a)} units active]"
            )
            marked = [u for u, _ in units] if i == 0 else []
            st.altair_chart(activation_strip(a, marked), width="stretch", height=STRIP_HEIGHT)
    st.caption(
        f"**Left:** red ink pushed the answer towards {digit}, blue ink pushed against it "
        "(gradient × pixel). **Right:** each cell is one unit after its ReLU, darker = more "
        "active, pale grey = silent (0); the red triangles mark the units below."
    )
    if not acts:  # a linear model: its first layer's columns are the ten digits' templates
        st.caption("This model has no hidden layer: the pixels go straight to the ten scores.")
        return
    st.markdown(f"**The first-layer units that voted most for {digit}**")
    templates = weight_images(model, n=len(acts[0]))  # (256, 28, 28)
    for col, (u, c) in zip(st.columns(len(units)), units):
        col.image(enlarge(diverging_rgb(templates[u]), 4), caption=f"unit {u} · {c:+.2f}")
    st.caption(
        "Each picture is one unit's 784 weights: ink on red pixels raises the unit, ink on "
        f"blue ones lowers it. The number is how much the unit added to the score of {digit}."
    )
