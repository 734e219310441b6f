"""The dashboard's parts, one file per job; pages import this package as `ui`.

server.py      the server's state behind functions: models folder, trainer, browser token, uploads
models.py      the model files a visitor may choose, loaded once, and the chooser
format.py      user text shown literally, durations, rates, pictures blown up
charts.py      every Altair chart the pages draw
recipe_form.py the recipe form, made from Recipe's declarations; returns what was asked
run_view.py    the queue, a run live and finished, the runs in the history
live.py        a run's live view, built once a second and shared by every page watching
finder_view.py the learning-rate finder's curve and suggestion
augment_view.py what augmentation does to a training picture
why.py         one picture's answer and "Why this answer?"
canvas.py      the drawing square
sidebar.py     the active model and a running job, on every page
steps_view.py  the seven steps of learning with their code; the lessons listed
step_view.py   Step through: the visitor's stepping network, its settings, the seven steps
compare_view.py two runs side by side: recipes with differences marked, curves
share.py       where the Train form starts from: a lesson, or a link carrying a recipe
"""

from .augment_view import show_augmentation
from .canvas import canvas
from .charts import confusion_chart, probability_chart
from .compare_view import show_compare
from .finder_view import show_lr_finder
from .format import enlarge, plain, prediction_line, upscale
from .live import refresh_every, retime, watchers
from .models import (
    DEFAULT_MODEL,
    DEFAULT_NAME,
    active_model_name,
    active_model_path,
    load_model,
    model_caption,
    model_files,
    model_picker,
    set_active_model,
    split_probs,
)
from .recipe_form import Submitted, recipe_form, shipped_recipe
from .run_view import show_queue, show_run, show_runs, show_teacher, starts_in
from .server import (
    MAX_FILES_PER_UPLOAD,
    MAX_SESSION_UPLOAD_BYTES,
    address,
    browser,
    keep_only_uploads,
    limit_uploads,
    mnist_missing,
    models_dir,
    one_at_a_time,
    serve,
    trainer,
)
from .share import start_from, write_link
from .sidebar import sidebar
from .step_view import act as step_act
from .step_view import buttons as step_buttons
from .step_view import network_form, stepper
from .step_view import settings as step_settings
from .step_view import show as show_step
from .steps_view import show_lessons, show_steps
from .why import show_prediction, show_why

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_NAME",
    "MAX_FILES_PER_UPLOAD",
    "MAX_SESSION_UPLOAD_BYTES",
    "Submitted",
    "active_model_name",
    "active_model_path",
    "address",
    "browser",
    "canvas",
    "confusion_chart",
    "enlarge",
    "keep_only_uploads",
    "limit_uploads",
    "load_model",
    "mnist_missing",
    "network_form",
    "model_caption",
    "model_files",
    "model_picker",
    "models_dir",
    "one_at_a_time",
    "plain",
    "prediction_line",
    "probability_chart",
    "recipe_form",
    "refresh_every",
    "retime",
    "serve",
    "set_active_model",
    "shipped_recipe",
    "show_augmentation",
    "show_compare",
    "show_lessons",
    "show_lr_finder",
    "show_prediction",
    "show_queue",
    "show_run",
    "show_runs",
    "show_step",
    "show_teacher",
    "show_steps",
    "show_why",
    "sidebar",
    "start_from",
    "split_probs",
    "starts_in",
    "step_act",
    "step_buttons",
    "step_settings",
    "stepper",
    "trainer",
    "upscale",
    "watchers",
    "write_link",
]
