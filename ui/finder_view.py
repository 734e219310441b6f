"""The learning-rate finder's result on the Train page: its curve, the suggestion and a
button that puts it into the form."""

from dataclasses import replace

import streamlit as st

from .charts import lr_chart
from .format import short


def use_lr(lr: float) -> None:
    """Callback: put `lr` into the form (before its widget is drawn again)."""
    st.session_state["train_lr"] = lr
    if (recipe := st.session_state.get("train_recipe")) is not None:
        st.session_state["train_recipe"] = replace(recipe, lr=lr)


def show_lr_finder() -> None:
    """The last learning-rate scan of this session: its curve, and a button to use it."""
    found = st.session_state.get("train_lrfind")
    if found is None:
        return
    res, recipe = found["result"], found["recipe"]
    suggestion = res.rounded  # 0.0016, not 0.0015885651294280524
    current = st.session_state.get("train_lr")
    chart, text = st.columns([3, 2], gap="large", vertical_alignment="center")
    with chart:
        st.altair_chart(lr_chart(res, suggestion, current), width="stretch", height=340)
    with text:
        st.markdown(f"#### Suggested learning rate: {short(suggestion)}")
        lowest = res.lrs[min(range(len(res.losses)), key=res.losses.__getitem__)]
        nb = lambda x: short(x).replace("-", "\u2011")  # 1e-6 never splits at its hyphen
        st.markdown(
            f"The finder trained this recipe's starting network for {len(res.lrs)} batches "
            f"while raising the learning rate from {nb(res.lrs[0])} to {nb(res.lrs[-1])}, then "
            "put the weights back. Too small a rate and the loss stays flat; too large and it "
            "shoots up. The suggestion is where the loss falls fastest, well before its lowest "
            f"point (at {nb(lowest)}), where the rate is already close to blowing up."
        )
        hidden = "-".join(map(str, recipe.hidden)) or "a linear model"
        st.caption(
            f"Scanned for {hidden}, {recipe.optimizer}, batch {recipe.batch_size}"
            + (", augmented" if recipe.augment else "")
            + (", strokes thickened" if recipe.strokes else "")
            + (". With onecycle, this is the peak rate." if recipe.schedule == "onecycle" else ".")
        )
        if current is not None and abs(current - suggestion) < 1e-12:
            st.caption(":material/check: The form uses this learning rate: press Start training.")
        else:
            st.button(
                f"Use lr = {short(suggestion)}",
                key="train_use_lr",
                icon=":material/arrow_upward:",
                on_click=use_lr,
                args=(suggestion,),
                help="Put this learning rate into the form above; then press Start training.",
            )
