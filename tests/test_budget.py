"""What a run costs is priced before it starts, and the price is refused beyond the limits."""

import pytest

from mlp_core import Recipe
from mlp_core.recipe import MAX_HIDDEN_LAYERS, RecipeError
from mlp_core.service.budget import CLI_LIMITS, BudgetError, Limits, check, estimate
from mlp_core.service.history import LossHistory
from mlp_core.service.models_folder import model_filename

N = 60_000


def test_the_default_recipe_fits_and_its_price_is_plausible():
    est = check(Recipe(), N, Limits())
    assert est.params == 784 * 256 + 256 + 256 * 64 + 64 + 64 * 10 + 10  # 218,058
    assert est.steps == 40 * 469
    assert 10 * 2**20 < est.bytes < 200 * 2**20  # weights, Adam's state, data, activations
    assert 10 < est.seconds < 600


def test_only_the_command_line_cuts_digits_before_training():
    with pytest.raises(BudgetError, match=r"cuts digits out of 8,000 composed numbers, minutes"):
        check(Recipe(cut_numbers=8000), N, Limits())
    alone, cut = check(Recipe(), N, CLI_LIMITS), check(Recipe(cut_numbers=8000), N, CLI_LIMITS)
    assert cut.steps == 40 * -(-(N + 3 * 8000) // 128) > alone.steps  # priced on what it learns


def test_wide_deep_layers_are_refused_with_their_size():
    with pytest.raises(BudgetError, match=r"has 14\d,\d{3},\d{3} parameters; this server trains"):
        check(Recipe(hidden=(8192, 8192, 8192)), N, Limits())


def test_memory_is_checked_against_what_the_device_can_spare():
    tiny_share = Limits(max_params=None, memory_share=1e-6)
    with pytest.raises(BudgetError, match=r"needs about .* of memory on cpu, more than the"):
        check(Recipe(), N, tiny_share)


def test_thirty_layers_of_8192_are_refused_even_without_a_parameter_cap():
    with pytest.raises(RecipeError, match=f"At most {MAX_HIDDEN_LAYERS} hidden layers, got 30"):
        Recipe(hidden=(8192,) * 30).validate()
    deep = Recipe(hidden=(8192,) * MAX_HIDDEN_LAYERS)
    assert estimate(deep, N).bytes > 2 * 2**30  # the CLI, with no caps, is still held by memory
    with pytest.raises(BudgetError, match="memory"):
        check(deep, N, Limits(max_params=None, memory_share=0.01))


def test_batch_one_for_a_thousand_epochs_is_refused_with_its_duration():
    with pytest.raises(BudgetError) as e:
        check(Recipe(batch_size=1, epochs=1000), N, Limits())
    assert "takes 60,000,000 steps (1000 epochs of 60,000 batches, about" in str(e.value)
    assert "at most 300,000" in str(e.value)
    check(Recipe(batch_size=1, epochs=1000), N, CLI_LIMITS)  # the CLI's owner may


def test_a_long_estimated_time_is_refused():
    slow = Recipe(hidden=(2048, 2048), batch_size=512, epochs=1000)
    with pytest.raises(BudgetError, match=r"would train for about .* hours"):
        check(slow, N, Limits(max_steps=None))


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLP_MAX_STEPS", "100")
    monkeypatch.setenv("MLP_MAX_PARAMS", "none")
    limits = Limits.from_env()
    assert limits.max_steps == 100 and limits.max_params is None
    with pytest.raises(BudgetError, match="at most 100"):
        check(Recipe(epochs=1), N)


def test_a_huge_seed_is_one_sentence():
    with pytest.raises(RecipeError, match="Seed must be a whole number from 0 to 2"):
        Recipe(seed=18446744073709551616).validate()


def test_file_names_stay_short_for_the_deepest_recipe():
    name = model_filename(Recipe(hidden=(8192,) * MAX_HIDDEN_LAYERS, lr=1e-300), 0.9876)
    assert len(name) <= 120 and name.endswith("_acc0.9876.pt")


@pytest.mark.parametrize("batches", [8, 80, 100_000])
def test_the_loss_history_stays_bounded_at_any_length(batches):
    """With a cap of 8 points, 100,000 batches are 12,500 caps' worth: the same halving as a
    million batches at the real cap of 4096, in a tenth of the appends."""
    h = LossHistory(cap=8)
    losses = [float(i % 7) for i in range(batches)]
    for x in losses:
        h.append(x)
    steps, values = h.points()
    assert len(h) == batches and len(values) <= 8 and steps[-1] == batches
    assert steps == sorted(steps)
    for first, last, value in zip([0, *steps], steps, values):  # each point: its batches' mean
        assert value == pytest.approx(sum(losses[first:last]) / (last - first), rel=1e-12)
    # what a refresh copies: at most cap + 1 points (the half-filled pair), at any length
    assert len(h.points()[1]) <= h.cap + 1


def test_the_loss_history_keeps_every_loss_below_its_cap():
    h = LossHistory(cap=8)
    for x in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]:
        h.append(x)
    assert h.points() == ([1, 2, 3, 4, 5, 6, 7], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    h.append(8.0)  # the eighth point halves the history: pairs averaged
    assert h.points() == ([2, 4, 6, 8], [1.5, 3.5, 5.5, 7.5])
    h.append(9.0)  # a half-filled pair shows as its own point until complete
    assert h.points() == ([2, 4, 6, 8, 9], [1.5, 3.5, 5.5, 7.5, 9.0])


def test_the_smoother_is_the_bias_corrected_moving_average_pandas_computes():
    import pandas as pd

    from mlp_core.lr_finder import smooth

    values = [float((i * 7919) % 13) for i in range(300)]
    expected = pd.Series(values).ewm(alpha=0.1, adjust=True).mean().tolist()
    assert smooth(values, beta=0.9) == pytest.approx(expected, rel=1e-9)
