"""Two runs from the history side by side: their recipes, differences marked, and their curves."""

from dataclasses import fields

import pandas as pd
import streamlit as st

from mlp_core import Recipe
from mlp_core.service import Run, Snapshot

from .charts import accuracies_chart, runs_chart
from .format import run_name

DIFFERS = "◀ differs"


def recipe_table(a: Snapshot, b: Snapshot) -> pd.DataFrame:
    """One row per recipe field: run a's value, run b's, and a mark where they differ."""
    rows = []
    for f in fields(Recipe):
        va, vb = getattr(a.recipe, f.name), getattr(b.recipe, f.name)
        rows.append(
            {
                "setting": f.metadata["label"],
                f"run {a.id}": str(va),
                f"run {b.id}": str(vb),
                "": DIFFERS if va != vb else "",
            }
        )
    return pd.DataFrame(rows)


def show_compare(runs: list[Run]) -> None:
    """Pick two runs (the newest two at first): recipes side by side, curves on shared axes."""
    if len(runs) < 2:
        return
    st.subheader("Compare two runs")
    by_id = {r.id: r for r in runs}
    ids = list(reversed(by_id))  # newest first
    left, right = st.columns(2)
    a = left.selectbox("Run", ids, index=1, key="train_compare_a", format_func=run_name)
    b = right.selectbox("against", ids, index=0, key="train_compare_b", format_func=run_name)
    if a not in by_id or b not in by_id:  # a forged choice
        return
    a, b = by_id[a].snapshot(), by_id[b].snapshot()  # only these two runs' curves are read
    st.dataframe(recipe_table(a, b), hide_index=True)
    loss, acc = st.columns(2)
    if (chart := runs_chart([a, b])) is not None:  # None until both have losses
        loss.altair_chart(chart, width="stretch")
    if a.accuracies or b.accuracies:  # none until an epoch ends
        acc.altair_chart(accuracies_chart([a, b]), width="stretch")
