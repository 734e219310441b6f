"""Every chart the dashboard draws, as Altair specs built from plain numbers.

Pages pass these to `st.altair_chart`; none of them builds a chart of its own.
"""

import altair as alt
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch

from mlp_core.lr_finder import LRFinderResult, smooth
from mlp_core.service import Snapshot

from .format import short

SMOOTHING = 50  # the moving average spans ~50 batches, or 2% of a short run
MAX_POINTS = 1500  # points per curve sent to the browser; more only slows the chart down
MAX_COMPARED = 8  # runs overlaid on one loss chart at most (the last ones given)
STRIP_HEIGHT = 44  # pixels: a row of markers above a 30-pixel strip of cells


def spec(chart: alt.TopLevelMixin) -> dict:
    """The chart as the Vega-Lite spec `st.vega_lite_chart` takes, its datasets already
    Arrow bytes: what `st.altair_chart` builds on every call (Altair's validation and the
    data's conversion, tens of milliseconds), built once for a chart many pages show.
    Pass a copy (`dict(spec)`): Streamlit takes the datasets out of the dict it is given."""
    out = chart.to_dict()
    out["datasets"] = {name: _arrow(rows) for name, rows in out.get("datasets", {}).items()}
    return out


def _arrow(rows: list[dict]) -> bytes:
    """Rows as an Arrow IPC stream, the form Streamlit sends a chart's data in; text
    columns (a curve's name on each of 3,000 points) sent once per distinct value."""
    table = pa.Table.from_pylist(rows)
    table = pa.table({
        name: pc.dictionary_encode(col) if pa.types.is_string(col.type) else col
        for name, col in zip(table.column_names, table.columns, strict=True)
    })  # fmt: skip
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def smoothed(losses: list[float], total_steps: int, stride: int = 1) -> list[float]:
    """The loss curve through mlp_core's Smoother (the learning-rate finder's too), over
    about SMOOTHING batches; `stride`: batches per point of a long run's history."""
    span = max(1, min(SMOOTHING, max(1, total_steps // 50)) // stride)
    return smooth(losses, beta=1 - 1 / span)


def stride_of(snap: Snapshot) -> int:
    """Batches per point of a run's loss history (1 until it holds thousands)."""
    return max(1, round(snap.step / max(1, len(snap.losses))))


def thinned(df: pd.DataFrame) -> pd.DataFrame:
    """At most MAX_POINTS evenly spaced rows, always keeping the last one."""
    stride = -(-len(df) // MAX_POINTS)
    return df if stride <= 1 else pd.concat([df.iloc[::stride], df.iloc[[-1]]]).drop_duplicates()


def loss_chart(snap: Snapshot) -> alt.Chart:
    """A run's loss per batch and its moving average, at most MAX_POINTS points each."""
    df = pd.DataFrame({"batch": snap.loss_steps, "loss": snap.losses})
    df["smoothed"] = smoothed(snap.losses, snap.total_steps, stride_of(snap))
    df = thinned(df).melt("batch", var_name="curve", value_name="value")
    df["curve"] = df["curve"].map({"loss": "each batch", "smoothed": "moving average"})
    return (
        alt.Chart(df, title="Training loss")
        .mark_line()
        .encode(
            x=alt.X("batch:Q", title="batch (one gradient step each)", axis=alt.Axis(format="d")),
            y=alt.Y("value:Q", title="loss (cross-entropy)"),
            color=alt.Color(
                "curve:N",
                scale=alt.Scale(
                    domain=["each batch", "moving average"], range=["#a6c8ea", "#1f4e9c"]
                ),
                legend=alt.Legend(title=None, orient="top"),
            ),
            tooltip=["batch", "curve", alt.Tooltip("value:Q", format=".4f", title="loss")],
        )
    )


def accuracy_chart(snap: Snapshot) -> alt.Chart:
    """A run's test accuracy after each epoch."""
    df = pd.DataFrame(
        {"epoch": range(1, len(snap.accuracies) + 1), "test accuracy": snap.accuracies}
    )
    return _accuracy_lines(df, tooltip=["epoch"])


def _accuracy_lines(df: pd.DataFrame, tooltip: list, color=alt.Undefined) -> alt.Chart:
    """Test accuracy (rows: epoch, test accuracy) per epoch; `color` splits it into lines."""
    return (
        alt.Chart(df, title="Test accuracy after each epoch")
        .mark_line(point=True)
        .encode(
            x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("test accuracy:Q", scale=alt.Scale(zero=False), axis=alt.Axis(format=".1%")),
            color=color,
            tooltip=[*tooltip, alt.Tooltip("test accuracy:Q", format=".4f")],
        )
    )


def runs_chart(snaps: list[Snapshot]) -> alt.Chart | None:
    """The smoothed loss of the runs given (the last MAX_COMPARED with losses) against
    epochs, one line each; None with fewer than two runs to compare."""
    curves = []
    for s in [s for s in reversed(snaps) if len(s.losses) > 1][:MAX_COMPARED]:
        per_epoch = s.total_steps / s.epochs if s.total_steps else len(s.losses)
        df = pd.DataFrame({"epoch": [i / per_epoch for i in s.loss_steps]})
        df["loss"] = smoothed(s.losses, s.total_steps, stride_of(s))
        df["run"] = f"#{s.id} {s.recipe.describe()}"
        curves.append(thinned(df))
    if len(curves) < 2:
        return None
    return (
        alt.Chart(pd.concat(curves), title="Loss of each run (moving average)")
        .mark_line()
        .encode(
            x=alt.X("epoch:Q", title="epochs (passes over the training images)"),
            y=alt.Y("loss:Q", title="loss (cross-entropy)"),
            color=alt.Color(
                "run:N", legend=alt.Legend(title=None, orient="bottom", columns=2, labelLimit=0)
            ),
            tooltip=[
                "run",
                alt.Tooltip("epoch:Q", format=".2f"),
                alt.Tooltip("loss:Q", format=".4f"),
            ],
        )
    )


def norms_chart(norms: list[dict], metric: str, title: str) -> alt.Chart:
    """One line per Linear layer of `metric` ("weight norm" or "grad norm") per epoch."""
    df = pd.DataFrame(norms)
    # "Linear 1 (784->256)" -> "784→256": three short labels fit in one row above the chart
    df["layer"] = df["layer"].str.replace(r"^.*\((\d+)->(\d+)\)$", r"\1→\2", regex=True)
    return (
        # the chart's whole height, title and legend included: at the page's default the
        # legend under the plot squeezed it and pushed the title out of the frame
        alt.Chart(df, title=title, height=300)
        .mark_line(point=True)
        .encode(
            x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y(f"{metric}:Q", scale=alt.Scale(type="log"), title=f"{metric} (log scale)"),
            color=alt.Color(
                "layer:N",
                sort=None,  # in the network's order, not alphabetical
                legend=alt.Legend(title="Linear layer", orient="top", direction="horizontal"),
            ),
            tooltip=["epoch", "layer", alt.Tooltip(f"{metric}:Q", format=".4g")],
        )
    )


def lr_chart(res: LRFinderResult, suggestion: float, current: float | None) -> alt.LayerChart:
    """Smoothed loss against learning rate (log scale), the suggestion and the form's rate."""
    df = pd.DataFrame({"learning rate": res.lrs, "loss": res.losses})
    x = alt.X(
        "learning rate:Q",
        scale=alt.Scale(type="log"),
        axis=alt.Axis(format=".0e", title="learning rate (log scale)"),
    )
    curve = (
        alt.Chart(df)
        .mark_line(color="#1f4e9c")
        .encode(
            x=x,
            y=alt.Y("loss:Q", title="loss (moving average)"),
            tooltip=[
                alt.Tooltip("learning rate:Q", format=".2g"),
                alt.Tooltip("loss:Q", format=".3f"),
            ],
        )
    )
    marks = [{"learning rate": suggestion, "mark": f"suggested {short(suggestion)}"}]
    if current is not None and current != suggestion and res.lrs[0] <= current <= res.lrs[-1]:
        marks.append({"learning rate": current, "mark": f"in the form {short(current)}"})
    rules = alt.Chart(pd.DataFrame(marks)).encode(
        x=x,
        color=alt.Color(
            "mark:N",
            scale=alt.Scale(
                domain=[m["mark"] for m in marks], range=["#ff4b4b", "#808495"][: len(marks)]
            ),
            legend=alt.Legend(title=None, orient="top"),
        ),
    )
    return (curve + rules.mark_rule(strokeWidth=2, strokeDash=[4, 2])).properties(
        title="Loss while the learning rate grows"
    )


def probability_chart(probs, height: int = 180) -> alt.Chart:
    """Bars of the ten class probabilities, digits 0-9 in order, the winner highlighted."""
    digits = [str(d) for d in range(10)]
    df = pd.DataFrame({"digit": digits, "probability": [float(p) for p in probs]})
    top = digits[int(np.argmax(probs))]
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("digit:O", sort=digits, axis=alt.Axis(labelAngle=0, title="digit")),
            y=alt.Y(
                "probability:Q",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%", title=None, values=[0, 0.25, 0.5, 0.75, 1]),
            ),
            color=alt.condition(alt.datum.digit == top, alt.value("#ff4b4b"), alt.value("#a3a8b8")),
            tooltip=["digit", alt.Tooltip("probability:Q", format=".2%")],
        )
        .properties(height=height)
    )


def activation_strip(values: torch.Tensor, marked: list[int] = ()) -> alt.LayerChart:
    """One hidden layer's activations as a row of cells, pale grey = 0, darker = more active;
    a red triangle above each unit in `marked`."""
    df = pd.DataFrame({"unit": range(len(values)), "activation": values.tolist()})
    x = alt.X("unit:O", axis=None)
    cells = (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=x,
            y=alt.value(10),  # pixels from the top: below the markers
            y2=alt.value(STRIP_HEIGHT),
            color=alt.Color(
                "activation:Q",
                # rgb: the default (hcl) interpolation tints the low end pink
                scale=alt.Scale(range=["#eceef3", "#3f007d"], domainMin=0, interpolate="rgb"),
                legend=None,
            ),
            tooltip=["unit", alt.Tooltip("activation:Q", format=".3f")],
        )
    )
    markers = (
        alt.Chart(pd.DataFrame({"unit": list(marked)}))
        .mark_point(shape="triangle-down", filled=True, size=50, color="#ff4b4b", opacity=1)
        .encode(x=x, y=alt.value(4), tooltip=["unit"])
    )
    return (cells + markers).configure_view(stroke=None)


def confusion_chart(cm: torch.Tensor) -> alt.LayerChart:
    """Heatmap of a confusion matrix with its counts: rows true digit, columns predicted."""
    n = cm.shape[0]
    df = pd.DataFrame(
        [(str(t), str(p), int(cm[t, p])) for t in range(n) for p in range(n)],
        columns=["true", "predicted", "count"],
    )
    digits = [str(d) for d in range(n)]
    base = alt.Chart(df).encode(
        x=alt.X("predicted:O", sort=digits, axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("true:O", sort=digits),
    )
    # symlog: the diagonal holds ~1000 per cell, mistakes a handful; both must stay readable.
    zero = alt.datum.count == 0
    cells = base.mark_rect().encode(
        color=alt.when(zero)
        .then(alt.value("white"))
        .otherwise(
            alt.Color("count:Q", scale=alt.Scale(type="symlog", scheme="blues"), legend=None)
        ),
        tooltip=["true", "predicted", "count"],
    )
    text = base.mark_text(fontSize=12).encode(
        text="count:Q",
        color=alt.when(zero)
        .then(alt.value("#c7c9d1"))
        .when(alt.datum.count > 100)
        .then(alt.value("white"))
        .otherwise(alt.value("#262730")),
    )
    return (cells + text).properties(height=380)


def accuracies_chart(snaps: list[Snapshot]) -> alt.Chart:
    """Test accuracy after each epoch of each run in `snaps`, one line each, shared axes."""
    df = pd.DataFrame(
        [
            {"epoch": e, "test accuracy": a, "run": f"#{s.id} {s.recipe.describe()}"}
            for s in snaps
            for e, a in enumerate(s.accuracies, 1)
        ],
        columns=["epoch", "test accuracy", "run"],
    )
    color = alt.Color(
        "run:N", legend=alt.Legend(title=None, orient="bottom", columns=2, labelLimit=0)
    )
    return _accuracy_lines(df, tooltip=["run", "epoch"], color=color)


def loss_share_chart(shares, labels) -> alt.Chart:
    """Each picture's share of one batch's loss: a bar per picture, numbered from 1."""
    n = len(shares)
    df = pd.DataFrame({
        "picture": range(1, n + 1), "share": [float(s) for s in shares],
        "label": [int(v) for v in labels],
    })  # fmt: skip
    return (
        alt.Chart(df, height=220)  # all of it, axes included: the y title fits beside the plot
        .mark_bar(color="#ff4b4b")
        .encode(
            x=alt.X("picture:O", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("share:Q", title="share of the loss", axis=alt.Axis(format="%")),
            tooltip=["picture", "label", alt.Tooltip("share:Q", format=".1%")],
        )
    )


def stepping_charts(losses: list[tuple[int, float]], accuracies: list[tuple[int, float]]):
    """The loss of each step's batch and the test-slice accuracy, side by side (finite
    values only: a diverged step's NaN is left out)."""
    df = pd.DataFrame(losses, columns=["step", "loss"])
    df = df[np.isfinite(df["loss"])]
    loss = (
        alt.Chart(df, title="Loss of each step's batch", height=300)
        .mark_line(point=len(df) <= 30)
        .encode(
            x=alt.X("step:Q", axis=alt.Axis(format="d")),
            y=alt.Y("loss:Q", title="loss (cross-entropy)"),
            tooltip=["step", alt.Tooltip("loss:Q", format=".4f")],
        )
    )
    acc = pd.DataFrame(accuracies, columns=["step", "test accuracy"])
    accuracy = (
        alt.Chart(acc, title="Accuracy on 1,000 test pictures", height=300)
        .mark_line(point=True)
        .encode(
            x=alt.X("step:Q", axis=alt.Axis(format="d")),
            y=alt.Y("test accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            tooltip=["step", alt.Tooltip("test accuracy:Q", format=".1%")],
        )
    )
    return loss, accuracy
