"""Step through learning: the visitor's own stepping network, its settings, the seven steps.

One `Stepper` (mlp_core/teach/stepper.py) per browser session, kept by the server under the
session's id: it goes when the session goes (Streamlit keeps a departed visitor's session
for server.disconnectedSessionTTL; ui/server.py's sweeper then drops its stepper, as it
frees its uploads). The server holds at most max_steppers() at once, and reports their
bytes in /_stcore/metrics (cache_type="step_through").
"""

import math
import os
import threading
import time
from dataclasses import replace

import pandas as pd
import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.stats import CACHE_MEMORY_FAMILY, CacheStat

from mlp_core import ModelFileError, Recipe, RecipeError, load_mnist, service
from mlp_core.insight import diverging_rgb, grey_rgb
from mlp_core.optim import OPTIMIZERS
from mlp_core.teach.stepper import DEFAULT, MAX_BATCH, Record, Stepper, code_for

from .charts import activation_strip, loss_share_chart, probability_chart, stepping_charts
from .format import enlarge, plain
from .models import load_model, model_files, model_label
from .recipe_form import parse_hidden
from .server import one_at_a_time, trainer, when_sessions_leave

KEY = "step_session"  # this session's id, the key of its stepper in _STEPPERS
SEED = "a fresh network from its seed"  # the first "Start from" choice; the others are models
_STEPPERS: dict[str, Stepper] = {}  # session id -> its stepper: the server's, not the page's
_LOCK = threading.Lock()  # page threads add, the sweeper thread removes


# what one visitor's stepping network may cost the web server, priced for one epoch
LIMITS = service.budget.Limits(
    max_params=1_000_000, max_steps=60_000, max_minutes=1.0, memory_share=0.25
)


def price(recipe: Recipe) -> service.budget.Estimate:
    """The budget's estimate for one epoch of `recipe` on the CPU, or BudgetError (a sentence)."""
    n_train = len(load_mnist(True, download=False))
    return service.budget.check(replace(recipe, epochs=1, device="cpu"), n_train, LIMITS)


def max_steppers() -> int:
    """Stepping models the server holds at once (MLP_MAX_STEPPERS, default 8)."""
    return int(os.environ.get("MLP_MAX_STEPPERS", 8))


def _forget_departed(live: set[str]) -> bool:
    """Drop the steppers of sessions that no longer exist (ui.server's sweeper calls this)."""
    with _LOCK:
        gone = [sid for sid in _STEPPERS if sid not in live]
        for sid in gone:
            del _STEPPERS[sid]
    return bool(gone)


class _Stats:
    """The bytes all visitors' stepping models hold, for /_stcore/metrics."""

    stats_families = (CACHE_MEMORY_FAMILY,)

    def get_stats(self, family_names=None):
        with _LOCK:
            held = sum(s.nbytes() for s in _STEPPERS.values())
        return {CACHE_MEMORY_FAMILY: [CacheStat("step_through", "", held)]}


@st.cache_resource
def _serve() -> None:
    when_sessions_leave(_forget_departed)
    if Runtime.exists():  # not under AppTest
        Runtime.instance().stats_mgr.register_provider(_Stats())


def _session() -> str:
    st.session_state[KEY] = get_script_run_ctx().session_id
    return st.session_state[KEY]


def stepper() -> Stepper | None:
    """This session's stepping network (a fresh 784-256-64-10 on the first visit)."""
    _serve()
    found = _STEPPERS.get(_session())
    if found is None:
        make(DEFAULT)
        found = _STEPPERS.get(_session())
    return found


def make(recipe, weights: dict | None = None) -> None:
    """Replace this session's stepper by a new one; UserError (a sentence) if refused."""
    me = _session()
    train, test = load_mnist(True, download=False), load_mnist(False, download=False)
    with _LOCK:  # held while it is built (a fraction of a second): the limit holds exactly
        if len([sid for sid in _STEPPERS if sid != me]) >= max_steppers():
            raise RecipeError(
                "Too many visitors are stepping through learning on this server now (at "
                f"most {max_steppers()} at once); try again in a few minutes."
            )
        made = Stepper(recipe, train, test, weights, price=price)  # refused: the old one stays
        _STEPPERS[me] = made


def network_form(current: Stepper) -> None:
    """Start again with another network: fresh from a seed, or a copy of a model file."""
    files = model_files()
    with st.expander("Your network: start again from a seed or from a trained model"):
        with st.form("step_network"):
            c1, c2, c3, c4 = st.columns([3, 2, 2, 1])
            start = c1.selectbox(
                "Start from",
                [SEED, *files],
                key="step_from",
                format_func=lambda n: n if n == SEED else model_label(n, files),
                help="A trained model's weights barely move: it is already good at this.",
            )
            hidden = c2.text_input("Hidden layer sizes", "256, 64", key="step_hidden")
            init = c3.selectbox("Initialisation", ["kaiming", "notebook"], key="step_init")
            seed = c4.number_input("Seed", value=0, step=1, key="step_seed")
            go = st.form_submit_button("Make this network", key="step_make")
    if not go:
        return
    settings = dict(
        optimizer=current.recipe.optimizer,
        lr=current.recipe.lr,
        batch_size=current.recipe.batch_size,
    )
    if start == SEED:
        recipe = replace(DEFAULT, hidden=parse_hidden(hidden), init=init, seed=seed, **settings)
        make(recipe)
    elif start in files:  # a name from the server's own list, never a path a browser sent
        try:
            ckpt = load_model(files[start])
        except ModelFileError as e:
            raise RecipeError(str(e)) from None
        recipe = replace(DEFAULT, hidden=ckpt.recipe.hidden, init=ckpt.recipe.init, **settings)
        make(recipe, ckpt.model.state_dict())
    else:
        raise RecipeError("Pick where to start from in the list.")


def settings(s: Stepper) -> int:
    """Optimizer, learning rate and batch size for the next step, and the picture to look
    into; each checked here (a browser can send anything). Returns the picture's index."""
    c1, c2, c3, c4 = st.columns(4)
    names = {"basic": "basic: p -= lr × grad", "sgd": "sgd with momentum 0.9", "adam": "adam"}
    opt = c1.selectbox(
        "Optimizer",
        OPTIMIZERS,
        key="step_optimizer",
        index=OPTIMIZERS.index(s.recipe.optimizer),
        format_func=names.get,
    )
    lr = c2.number_input("Learning rate", value=s.recipe.lr, step=0.01, format="%g", key="step_lr")
    batch = c3.number_input(
        "Batch size",
        value=s.recipe.batch_size,
        step=1,
        key="step_batch",
        help=f"Pictures per step, 1 to {MAX_BATCH}: all of them are shown.",
    )
    pick = c4.number_input(
        "Picture to look into",
        value=1,
        step=1,
        key="step_pick",
        help="Its activations are shown under Predict.",
    )
    for apply in (lambda: s.set_optimizer(opt, lr), lambda: s.set_batch_size(batch)):
        try:
            apply()
        except RecipeError as e:  # BudgetError too: a sentence; the stepper keeps its settings
            st.warning(plain(str(e)), icon=":material/warning:")
    n = s.recipe.batch_size
    if isinstance(pick, bool) or not isinstance(pick, int) or not 1 <= pick <= n:
        st.warning(f"The picture to look into must be one of 1 to {n}; showing picture 1.")
        return 0
    return pick - 1


def buttons() -> str | None:
    """Step, ×10, One epoch or Reset: which was pressed."""
    with st.container(horizontal=True):
        step = st.button("Step", type="primary", icon=":material/skip_next:", key="step_one")
        ten = st.button("×10", key="step_ten", help="Ten steps; the last is shown.")
        epoch = st.button(
            "One epoch",
            key="step_epoch",
            icon=":material/fast_forward:",
            help="One pass over the 60,000 training pictures.",
        )
        reset = st.button(
            "Reset",
            key="step_reset",
            icon=":material/restart_alt:",
            help="Back to the starting weights and the first batch.",
        )
    return "step" if step else "ten" if ten else "epoch" if epoch else "reset" if reset else None


def act(s: Stepper, action: str | None, pick: int) -> None:
    """Do what was pressed; an epoch with a progress bar, computed a chunk at a time so
    that other visitors' pages take their turns (ui.server.one_at_a_time)."""
    if action == "reset":
        s.reset()
        return
    n = {"step": 1, "ten": 10, "epoch": len(s.learn.train)}.get(action)
    if n is None:
        return
    if n > 10 and training():
        st.warning(BUSY[0].upper() + BUSY[1:], icon=":material/hourglass_top:")
        return
    bar, before = (st.progress(0.0, text="Stepping…") if n > 10 else None), s.steps
    steps = s.run(n, pick, go_on=lambda: not training())
    while True:
        with one_at_a_time():
            done = next(steps, None)
        time.sleep(0.005)  # a lock is not fair: let a page waiting for it (or the GIL) go first
        if done is None:
            break
        if bar is not None:
            bar.progress(done / n, text=f"Step {done:,} of {n:,}")
    if bar is not None:
        bar.empty()
    if s.steps - before < n and training():  # else a diverged loss ended it: show() says so
        st.warning(f"Stopped after {s.steps - before:,} steps: {BUSY}", icon=":material/pause:")


BUSY = (
    "a training run is using this server's processors now, and an epoch of steps here would "
    "slow it down, so One epoch is off until the run ends. Step and ×10 work meanwhile."
)


def training() -> bool:
    """Is a run training on this server now (its worker busy with the processors)?"""
    return bool(trainer().training())


def _code(step: str, optimizer: str) -> None:
    for code in code_for(step, optimizer):
        st.caption(plain(code.where))
        st.code(code.text, language="python", wrap_lines=True)  # the column is narrow


def _section(title: str, text: str, step: str, optimizer: str):
    """A step's heading and words, its code on the right; returns the left column."""
    st.subheader(title, divider="gray")
    left, right = st.columns([3, 2], gap="medium")
    with right:
        _code(step, optimizer)
    left.markdown(text)
    return left


def _guess(probs, i: int) -> str:
    d = int(probs[i].argmax())
    return f"{d} ({float(probs[i, d]):.0%})"


def show(s: Stepper) -> None:
    """The last step's seven steps in the order the code runs them, each beside its code."""
    r: Record | None = s.last
    st.caption(
        f"{plain(s.recipe.describe().rsplit(' ', 1)[0])} · {s.steps:,} "
        f"step{'' if s.steps == 1 else 's'} taken "
        f"· pass {s.epoch + 1} over the training pictures · {s.params:,} parameters"
    )
    if r is None:
        st.info("Press **Step**: the network looks at 16 pictures and learns from them once.")
        return
    if not (math.isfinite(r.loss_before) and math.isfinite(r.loss_after)):
        st.error(
            "The loss is no longer a number: the steps threw the weights so far that the "
            "sums overflowed. Nothing useful comes after this: press Reset and lower the "
            "learning rate."
        )
    b = len(r.labels)
    with _section("1. The batch", BATCH_TEXT, "batch", r.optimizer):
        st.image(
            [enlarge(grey_rgb(img), 3) for img in r.images],
            caption=[
                f"{i + 1}: {int(y)} → {_guess(r.probs_before, i)}" for i, y in enumerate(r.labels)
            ],
            width=84,
        )
    with _section("2. Predict", PREDICT_TEXT.format(n=r.pick + 1), "predict", r.optimizer):
        st.image(enlarge(grey_rgb(r.images[r.pick]), 4), caption=f"picture {r.pick + 1}")
        for i, a in enumerate(r.acts):
            st.caption(f"Hidden layer {i + 1}: {int((a > 0).sum())} of {len(a)} units active")
            st.altair_chart(activation_strip(a), width="stretch")
        st.caption("The ten outputs, as probabilities")
        st.altair_chart(
            probability_chart(r.probs_before[r.pick].numpy(), height=120), width="stretch"
        )
    with _section("3. Loss", LOSS_TEXT, "loss", r.optimizer):
        worst = int(r.shares.argmax())
        st.markdown(
            f"**Batch loss: {r.loss_before:.4f}**, the mean of {b} pictures' losses. "
            f"Picture {worst + 1} (a {int(r.labels[worst])}) carries {float(r.shares[worst]):.0%} "
            "of it."
        )
        st.altair_chart(loss_share_chart(r.shares, r.labels), width="stretch")
    with _section("4. Gradients", GRAD_TEXT, "gradients", r.optimizer):
        st.image(
            [enlarge(diverging_rgb(-g), 4) for g in r.unit_grads],
            caption=[f"unit {u}: −gradient" for u in r.units],
            width=112,
        )
        st.dataframe(_layers(s, r, "gradient norm", r.grad_norms), hide_index=True)
    with _section("5. Step", STEP_TEXT[r.optimizer].format(lr=r.lr), "step", r.optimizer):
        st.image(
            [enlarge(diverging_rgb(c), 4) for c in r.unit_changes],
            caption=[f"unit {u}: change" for u in r.units],
            width=112,
        )
        table = _layers(s, r, "largest change", r.largest)
        table["typical change"] = [f"{v:.2e}" for v in r.typical]
        st.dataframe(table, hide_index=True)
    with _section("6. After", AFTER_TEXT, "after", r.optimizer):
        verb = "fell" if r.loss_after < r.loss_before else "rose"
        verb = verb if math.isfinite(r.loss_after) else "no longer a number"
        st.markdown(
            f"**Loss of this batch, step {r.step:,}: {r.loss_before:.4f} → {r.loss_after:.4f}** "
            f"({verb})"
        )
        st.dataframe(
            pd.DataFrame(
                {
                    "picture": range(1, b + 1),
                    "label": r.labels.tolist(),
                    "guess before": [_guess(r.probs_before, i) for i in range(b)],
                    "guess after": [_guess(r.probs_after, i) for i in range(b)],
                    "loss before": r.losses_before.tolist(),
                    "loss after": r.losses_after.tolist(),
                }
            ),
            hide_index=True,
            height=min(600, 35 * (b + 1) + 3),
            column_config={  # four decimals each, as in the line above (not 2.072 beside 1.9541)
                name: st.column_config.NumberColumn(format="%.4f")
                for name in ("loss before", "loss after")
            },
        )
    with _section("7. Repeat", REPEAT_TEXT, "repeat", r.optimizer):
        loss, accuracy = stepping_charts(s.losses, s.accuracies)
        st.altair_chart(loss, width="stretch")
        st.altair_chart(accuracy, width="stretch")


def _layers(s: Stepper, r: Record, name: str, values: list[float]) -> pd.DataFrame:
    names = [
        f"Linear {i + 1} ({lin.in_features}→{lin.out_features})"
        for i, lin in enumerate(s.model.linears())
    ]
    return pd.DataFrame({"layer": names, name: [f"{v:.2e}" for v in values]})


BATCH_TEXT = (
    "We take the next mini-batch of the shuffled training pictures. Under each: its number, "
    "the digit it is → what the network guesses now, before learning from it, and how sure "
    "it is."
)
PREDICT_TEXT = (
    "The pictures go through the network layer by layer: each Linear multiplies by its "
    "weights and adds its bias, each ReLU turns negative values to 0. Here is what picture "
    "{n} lights up in each hidden layer (darker: more active), and the ten scores at the "
    "end, turned into probabilities."
)
LOSS_TEXT = (
    "Cross-entropy asks: how much probability did the network give the right digit? A "
    "picture it got right with confidence costs almost nothing; a confident mistake costs a "
    "lot. The batch's loss is the mean, so the pictures the network gets most wrong are the "
    "ones the loss cares about most."
)
GRAD_TEXT = (
    "`loss.backward()` works out, for every weight, which way it should move to lower the "
    "loss. Each picture is one first-layer unit's 784 weights, one per pixel: to lower the "
    "loss, this unit wants more ink weight where it is red, less where it is blue. These "
    "are the units that want to move most."
)
STEP_TEXT = {
    "basic": "The notebook's optimizer moves every weight by the learning rate ({lr:g}) times "
    "its gradient, against it: the change is the gradient's picture scaled and turned "
    "round.",
    "sgd": "SGD with momentum keeps a running direction: 0.9 of the last step plus this "
    "gradient, times the learning rate ({lr:g}). Steps gather speed down a steady slope.",
    "adam": "Adam divides each weight's averaged gradient by its recent size, so every "
    "weight moves by about the learning rate ({lr:g}) whatever its gradient's scale: the "
    "change no longer looks like the gradient.",
}
AFTER_TEXT = (
    "The same pictures go through the new weights. One step on this batch usually lowers "
    "its loss a little; with a learning rate far too large, the step overshoots and the "
    "loss jumps up instead."
)
REPEAT_TEXT = (
    "And again, with the next batch. One batch's loss jumps about (some batches are harder "
    "than others); over many steps it falls, and the accuracy on 1,000 test pictures the "
    "network never learns from rises."
)
