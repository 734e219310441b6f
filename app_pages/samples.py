"""Samples: browse MNIST with a model's answers, its mistakes and its confusion matrix."""

import random

import pandas as pd
import streamlit as st
import torch

import ui
from mlp_core import DataError, ModelFileError, load_mnist
from mlp_core.insight import hardest
from mlp_core.metrics import confusion_matrix, per_class_accuracy, select_indices

ROWS, COLS = 6, 8
PER_PAGE = ROWS * COLS
HARDEST = 16  # test pictures shown in "The hardest test pictures"


def restart() -> None:
    """A new selection of images: the large view moves to its first image."""
    st.session_state.pop("samples_index", None)


def shuffle(seed: int | None) -> None:
    st.session_state["samples_seed"] = seed
    restart()


def pick(i: int) -> None:
    st.session_state["samples_index"] = i


st.title("Samples")
st.caption(
    "The pictures MNIST is made of, with the label a person gave each one and, "
    "beside it, what the chosen model answers."
)

if (missing := ui.mnist_missing()) is not None:
    st.warning(missing)
    st.stop()

c_model, c_split, c_digit, c_wrong = st.columns([3, 2, 2, 3], vertical_alignment="bottom")
with c_model:
    path, ckpt = ui.model_picker("samples_model")
with c_split:
    split_name = st.radio(
        "Split", ["test", "train"], horizontal=True, key="samples_split", on_change=restart
    )
with c_digit:
    digit = st.selectbox("Digit", ["All", *range(10)], key="samples_digit", on_change=restart)
with c_wrong:
    wrong_only = st.toggle(
        "Only misclassified",
        key="samples_wrong",
        on_change=restart,
        disabled=ckpt is None,
        help="Only the pictures the model gets wrong.",
    )

train = split_name == "train"
try:
    split = load_mnist(train, download=False)
    probs = ui.split_probs(path, train) if ckpt is not None else None  # (N, 10)
except (DataError, ModelFileError) as e:
    st.warning(str(e))
    st.stop()
preds = torch.from_numpy(probs.argmax(1)) if probs is not None else None  # (N,)

seed = st.session_state.setdefault("samples_seed", None)
idx = select_indices(
    split.labels,
    preds,
    digit=None if digit == "All" else digit,
    wrong_only=wrong_only and preds is not None,
    seed=seed,
)
n_pages = max(1, -(-len(idx) // PER_PAGE))

with st.container(horizontal=True, vertical_alignment="center"):
    # One pager per selection: a new selection starts on its page 1.
    selection = f"{split_name}_{digit}_{wrong_only}_{seed}"
    page = st.pagination(n_pages, key=f"samples_page_{selection}")
    st.button(
        "Random set",
        icon=":material/shuffle:",
        key="samples_random",
        on_click=shuffle,
        args=(random.randrange(1_000_000),),
    )
    if seed is not None:
        st.button("In order", key="samples_ordered", on_click=shuffle, args=(None,))
    order = f"shuffled (seed {seed})" if seed is not None else "in order"
    st.caption(f"{len(idx):,} picture{'s' * (len(idx) != 1)}, {order}; page {page} of {n_pages}")

shown = idx[(page - 1) * PER_PAGE : page * PER_PAGE].tolist()
if st.session_state.get("samples_index", len(split)) >= len(split):
    st.session_state["samples_index"] = shown[0] if shown else 0

grid, detail = st.columns([4, 1], gap="large")
with grid:
    if not shown:
        st.info("The model gets every one of these pictures right.")
    for row in range(0, len(shown), COLS):
        for col, i in zip(st.columns(COLS, gap="xsmall"), shown[row : row + COLS], strict=False):
            with col:
                label = int(split.labels[i])
                st.image(ui.upscale(split.images[i], 84))
                right = preds is None or int(preds[i]) == label
                mark = " :green[✓]" if preds is not None and right else ""
                with st.container(horizontal=True, vertical_alignment="center", gap="small"):
                    st.markdown(f"**{label}**{mark}", width="content")
                    st.button(
                        f"#{i}",
                        key=f"samples_pick_{i}",
                        on_click=pick,
                        args=(i,),
                        type="tertiary",
                        help="Show this picture large, with the model's ten probabilities",
                    )
                if not right:
                    # no-break spaces: the mark stays on one line under a narrow picture
                    st.markdown(
                        f":small[:red-background[:red[**✗\u00a0predicted\u00a0{int(preds[i])}**]]]"
                    )

with detail:
    i = st.number_input(
        f"Picture number (0 to {len(split) - 1:,})",
        min_value=0,
        max_value=len(split) - 1,
        step=1,
        key="samples_index",
    )
    label = int(split.labels[i])
    st.image(ui.upscale(split.images[i], 224), caption=f"{split_name} #{i}, labelled {label}")
    if probs is not None:
        line = ui.prediction_line(probs[i])
        mark = "" if int(preds[i]) == label else " :red[✗ wrong]"
        st.markdown(f"**{line}**{mark}")
        st.altair_chart(ui.probability_chart(probs[i]), width="stretch")

if ckpt is not None:
    test = load_mnist(False, download=False)
    test_probs = torch.from_numpy(ui.split_probs(path, False))  # (10000, 10)
    test_preds = test_probs.argmax(1)  # (10000,)
    cm = confusion_matrix(test_preds, test.labels)  # (10, 10)
    n_right = int(cm.diag().sum())
    st.subheader("Where the model goes wrong on the test split")
    st.markdown(
        f"{n_right:,} of {len(test):,} test pictures right ({n_right / len(test):.2%}), "
        f"{len(test) - n_right:,} wrong."
    )
    c_cm, c_acc = st.columns([3, 2], gap="large")
    with c_cm:
        st.markdown("**Confusion matrix**: row = true digit, column = predicted digit")
        st.altair_chart(ui.confusion_chart(cm), width="stretch")
    with c_acc:
        st.markdown("**Accuracy per digit**")
        per_class = pd.DataFrame(
            {
                "digit": range(10),
                "pictures": cm.sum(1).tolist(),
                "right": cm.diag().tolist(),
                "accuracy": per_class_accuracy(cm).tolist(),
            }
        )
        st.dataframe(
            per_class,
            hide_index=True,
            width="stretch",
            column_config={
                "accuracy": st.column_config.ProgressColumn(
                    "accuracy", format="percent", min_value=0.0, max_value=1.0
                )
            },
        )

    st.subheader("The hardest test pictures for this model")
    st.markdown(
        f"The {HARDEST} test pictures to whose true label the model gives the lowest "
        "probability. Some are badly written, a few arguably carry the wrong label: "
        "a person would hesitate too."
    )
    worst = hardest(test_probs, test.labels, HARDEST)  # [(index, p(true))], lowest first
    for row in range(0, len(worst), COLS):
        for col, (i, p) in zip(st.columns(COLS, gap="xsmall"), worst[row : row + COLS]):
            true, pred = int(test.labels[i]), int(test_preds[i])
            # no-break spaces: "predicted" and its digit stay on one line
            caption = f"true\u00a0{true} · predicted\u00a0{pred} · p(true)={p:.1%}"
            col.image(ui.upscale(test.images[i], 84), caption=caption)
