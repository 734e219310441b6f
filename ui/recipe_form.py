"""The recipe form, made from Recipe's declarations: a widget per field, in field order.

`recipe_form` returns what the visitor asked for (a Recipe and an action, or the sentence
that says why the form cannot make one); the page decides what to do with it.
"""

from dataclasses import dataclass, fields, replace

import streamlit as st

from mlp_core import ModelFileError, Recipe, RecipeError, usable_devices
from mlp_core.recipe import FORM

from .models import DEFAULT_MODEL, load_model

COLUMNS = 4  # widgets per row


@dataclass
class Submitted:
    action: str  # "start", "find" or "share": the button pressed
    recipe: Recipe | None  # None when the form could not make one: see error
    error: str | None = None


def shipped_recipe() -> Recipe:
    """The recipe of the model that ships with the app, the form's starting values."""
    try:
        return load_model(DEFAULT_MODEL).recipe
    except ModelFileError:
        return Recipe()


def parse_hidden(text: str) -> tuple[int, ...]:
    """'256, 64' -> (256, 64); '' -> () (a linear model); not whole numbers -> RecipeError."""
    parts = text.replace(",", " ").split()
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise RecipeError(
            f"Hidden layer sizes must be whole numbers separated by commas, like 256, 64; "
            f"got {text!r}."
        ) from None


def widget(f, value, devices: dict[str, str]):
    """The widget for one Recipe field `f`, showing `value`; returns what it holds."""
    m, key = f.metadata, f"train_{f.name}"
    common = dict(label=m["label"], key=key, help=m["help"])
    if f.type == tuple[int, ...]:
        return st.text_input(value=", ".join(map(str, value)), **common)
    if f.name == "device":  # the choices are this machine's devices
        options = list(devices)
        return st.selectbox(
            options=options, index=options.index(value), format_func=devices.get, **common
        )
    if "choices" in m:
        options, names = list(m["choices"]), m.get("names", {})
        return st.selectbox(
            options=options,
            index=options.index(value),
            format_func=lambda c: names.get(c, c),
            **common,
        )
    if f.type is bool:
        return st.checkbox(value=bool(value), **common)
    if f.type is float:
        return st.number_input(value=float(value), step=m["step"], format="%g", **common)
    return st.number_input(value=int(value), step=1, **common)


def recipe_form(defaults: Recipe, disabled: bool) -> Submitted | None:
    """The form, filled from `defaults`; what was submitted, or None until a button is pressed.

    Fields it does not show (the command line's only) take Recipe's own defaults; where
    `defaults` set one otherwise (the shipped model's cut digits), a caption says so.
    """
    devices = dict(usable_devices())  # {'cpu': 'cpu', 'cuda:0': 'cuda:0 (NVIDIA ...)'}
    values = {f.name: getattr(defaults, f.name) for f in fields(Recipe)}
    for f in fields(Recipe):
        if f.name not in FORM and values[f.name] != f.default:
            flag = f"--{f.name.replace('_', '-')} {values[f.name]}"
            st.caption(
                f"{f.metadata['label']}: {values[f.name]:,} in the recipe this form starts from. "
                f"Only the command line does that (`python -m mlp_core train {flag}`): this "
                f"form trains with {f.default}."
            )
    if st.session_state.get("train_recipe") is not defaults or defaults.device not in devices:
        # like the notebook: the first GPU when there is one, else the CPU
        values["device"] = next((d for d in devices if d != "cpu"), "cpu")
    with st.form("train_form"):
        got = {}
        shown = [f for f in fields(Recipe) if f.name in FORM]
        for f in fields(Recipe):
            if f not in shown:  # the command line's only: the dashboard trains on MNIST alone
                got[f.name] = f.default
        for i, f in enumerate(shown):
            if i % COLUMNS == 0:
                row = iter(st.columns(COLUMNS, vertical_alignment="center"))
            with next(row):
                got[f.name] = widget(f, values[f.name], devices)
        with st.container(horizontal=True):
            start = st.form_submit_button(
                "Start training",
                type="primary",
                icon=":material/play_arrow:",
                disabled=disabled,
                key="train_start",
            )
            find = st.form_submit_button(
                "Find a learning rate",
                icon=":material/query_stats:",
                disabled=disabled,
                key="train_find",
                help="Try every learning rate from 1e-6 to 10 on this recipe for a few hundred "
                "batches (a few seconds), then suggest one. Nothing is trained or saved.",
            )
            share = st.form_submit_button(
                "Put in the link",
                icon=":material/link:",
                key="train_share",
                help="Put this recipe in the page's address without running it: copy the "
                "address to share the recipe; opening it fills this form.",
            )
    if not (start or find or share):
        return None
    action = "start" if start else "find" if find else "share"
    try:
        got["hidden"] = parse_hidden(got["hidden"])
    except RecipeError as e:
        return Submitted(action, None, str(e))
    return Submitted(action, replace(defaults, **got))
