"""Inside the network, without Streamlit: templates, activations, saliency, finder, augmenting."""

import numpy as np
import pytest
import torch

from mlp_core import Batches, Callback, DigitClassifier, OneCycle, Recipe, build_learner
from mlp_core.augment import augmentation, random_affine, random_strokes
from mlp_core.insight import (
    WeightWatch,
    activations,
    diverging_rgb,
    grey_rgb,
    hardest,
    saliency,
    saliency_overlay,
    template_grid,
    tile,
    top_units,
    weight_grid,
    weight_images,
)
from mlp_core.lr_finder import lr_find


@pytest.fixture
def model():
    torch.manual_seed(0)
    return DigitClassifier(init="kaiming")


def test_weight_images_and_grid(model):
    imgs = weight_images(model, 32)
    assert imgs.shape == (32, 28, 28)
    assert torch.equal(imgs[5].flatten(), model.linears()[0].weight[:, 5].detach())
    grid = weight_grid(model, 32, cols=8)
    assert grid.shape == (4 * 29 - 1, 8 * 29 - 1, 3) and grid.dtype.name == "uint8"
    assert (grid == template_grid(imgs, cols=8)).all()


def test_tile_places_each_picture_and_leaves_grey_gaps():
    imgs = np.stack([np.full((2, 3, 3), 10 * (i + 1), dtype=np.uint8) for i in range(5)])
    grid = tile(imgs, cols=2, pad=1, fill=160)
    assert grid.shape == (3 * 3 - 1, 2 * 4 - 1, 3)  # 3 rows of 2, pictures 2 high and 3 wide
    assert (grid[0:2, 0:3] == 10).all() and (grid[0:2, 4:7] == 20).all()
    assert (grid[3:5, 0:3] == 30).all() and (grid[6:8, 0:3] == 50).all()
    assert (grid[2] == 160).all() and (grid[:, 3] == 160).all()  # the gaps
    assert (grid[6:8, 4:7] == 160).all()  # the unused last cell
    assert tile(imgs, cols=8).shape == (2, 5 * 4 - 1, 3)  # never more columns than pictures


def test_template_grid_scales_each_template_to_its_own_range():
    t = torch.zeros(2, 28, 28)
    t[0, 0, 0], t[1, 0, 0] = 1.0, 0.001  # a strong and a weak template: both at full colour
    grid = template_grid(t, cols=2)
    assert (grid[0, 0] == grid[0, 29]).all() and tuple(grid[0, 0]) != (255, 255, 255)
    assert (grid[5, 5] == 255).all()  # zero weights are white


def test_grey_rgb_draws_white_ink_on_black():
    rgb = grey_rgb(torch.tensor([[0.0, 1.0]]))
    assert rgb.tolist() == [[[0, 0, 0], [255, 255, 255]]]
    assert (grey_rgb(torch.tensor([0, 255], dtype=torch.uint8)) == rgb[0]).all()


def test_saliency_overlay_colours_the_ink_that_mattered():
    x = torch.zeros(28, 28)
    x[10, 5:20] = 1.0  # a stroke of ink
    sal = torch.zeros(28, 28)
    sal[10, 5], sal[10, 6], sal[10, 7] = 2.0, -2.0, 0.0
    rgb = saliency_overlay(x, sal)
    assert rgb.shape == (28, 28, 3) and rgb.dtype.name == "uint8"
    assert (rgb[0, 0] == 255).all()  # the paper is white
    grey = rgb[10, 7]  # ink that did not matter: light grey
    assert grey[0] == grey[1] == grey[2] and 150 < grey[0] < 255
    red, blue = rgb[10, 5], rgb[10, 6]
    assert red[0] > red[2] + 100 and blue[2] > blue[0] + 100
    assert (saliency_overlay(x, torch.zeros(28, 28)) == rgb[10, 7]).all(axis=-1)[10, 5:20].all()


def test_diverging_colours():
    rgb = diverging_rgb(torch.tensor([-2.0, 0.0, 2.0, 1.0]))
    assert rgb.shape == (4, 3) and rgb.min() >= 0 and rgb.max() <= 255
    neg, zero, pos, half = rgb.tolist()
    assert zero == [255, 255, 255]  # zero is neutral
    assert neg[2] > neg[0] and pos[0] > pos[2]  # negative blue, positive red
    assert pos[1] < half[1] < 255  # stronger values, stronger colour


def test_templates_change_after_a_training_step(tiny):
    learn = build_learner(Recipe(hidden=(64,), batch_size=50, epochs=1), *tiny)
    before = weight_grid(learn.model)
    xb, yb = next(iter(learn.train))
    learn.one_batch(xb, yb)
    assert (weight_grid(learn.model) != before).any()


def test_activations_shapes_and_relu(model):
    acts = activations(model, torch.rand(28, 28))
    assert [a.shape for a in acts] == [(256,), (64,)]
    assert all((a >= 0).all() for a in acts)


def test_saliency_shape_and_blank_is_zero(model):
    s = saliency(model, torch.rand(28, 28))
    assert s.shape == (28, 28) and s.abs().sum() > 0
    assert torch.equal(saliency(model, torch.zeros(28, 28)), torch.zeros(28, 28))


def test_top_units_depend_on_the_input(model):
    a = top_units(model, torch.rand(28, 28, generator=torch.Generator().manual_seed(1)), k=5)
    b = top_units(model, torch.rand(28, 28, generator=torch.Generator().manual_seed(2)), k=5)
    assert len(a) == 5 and all(0 <= u < 256 for u, _ in a)
    assert [c for _, c in a] == sorted((c for _, c in a), reverse=True)
    assert [u for u, _ in a] != [u for u, _ in b]


def test_top_units_sum_to_the_last_layers_exact_share():
    # with one hidden layer, activation x gradient is exact: contributions + bias = logit
    torch.manual_seed(0)
    m = DigitClassifier((16,))
    x = torch.rand(28, 28)
    units = top_units(m, x, target=3, k=16)
    logit = m(x.unsqueeze(0))[0, 3]
    total = sum(c for _, c in units) + m.linears()[1].bias[3]
    assert total.item() == pytest.approx(logit.item(), abs=1e-4)


def test_hardest_examples():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    labels = torch.tensor([0, 0, 1])
    assert hardest(probs, labels, k=2) == [(1, pytest.approx(0.2)), (2, pytest.approx(0.4))]


def test_weight_watch_publishes_templates_and_norms(tiny):
    published = {}
    watch = WeightWatch(lambda k, v: published.__setitem__(k, v), n=8, every=5)
    learn = build_learner(Recipe(hidden=(32, 16), batch_size=50, epochs=2), *tiny, [watch])
    learn.fit(2)
    assert published["weights"].shape == (8, 28, 28)
    assert published["weights_step"] == 2 * 10  # the last refresh: the second epoch's end
    norms = published["norms"]
    assert len(norms) == 2 * 3 and {n["epoch"] for n in norms} == {1, 2}
    assert all(n["weight norm"] > 0 and n["grad norm"] > 0 for n in norms)


def test_lr_finder_restores_weights_and_suggests_inside_the_range(tiny):
    learn = build_learner(Recipe(hidden=(32,), batch_size=50, optimizer="adam"), *tiny)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    res = lr_find(learn, start_lr=1e-5, end_lr=10, num_it=60)
    assert len(res.lrs) == len(res.losses) >= 10
    assert res.lrs == sorted(res.lrs) and res.lrs[0] == pytest.approx(1e-5)
    assert res.lrs[0] <= res.suggestion <= res.lrs[-1]
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, before[k])
    assert learn.opt.t == 0 and all(m.abs().sum() == 0 for m in learn.opt.m)


def test_lr_finder_stops_when_the_loss_explodes(tiny):
    learn = build_learner(Recipe(hidden=(32,), batch_size=50, optimizer="sgd"), *tiny)
    res = lr_find(learn, start_lr=1e-4, end_lr=1e4, num_it=200)
    assert len(res.lrs) < 200 and res.lrs[-1] < 1e4


def test_augmentation_keeps_shapes_and_labels_and_is_seeded(tiny):
    x = tiny[0].images[:64].float() / 255
    a = random_affine(x, torch.Generator().manual_seed(0))
    b = random_affine(x, torch.Generator().manual_seed(0))
    c = random_affine(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert 0 <= a.min() and a.max() <= 1 and not torch.equal(a, x)
    # a small warp keeps most of the ink: the picture is moved, not destroyed
    assert a.sum() == pytest.approx(x.sum().item(), rel=0.1)
    batches = Batches(
        tiny[0], 100, generator=torch.Generator().manual_seed(0), augment=random_affine
    )
    plain = Batches(tiny[0], 100, generator=torch.Generator().manual_seed(0))
    (xa, ya), (xp, yp) = next(iter(batches)), next(iter(plain))
    assert torch.equal(ya, yp) and not torch.equal(xa, xp)  # same labels, new pictures
    second = next(iter(batches))[0]  # the next epoch draws another warp
    assert not torch.equal(second, xa)


def test_zero_warp_is_identity():
    x = torch.rand(4, 28, 28)
    out = random_affine(x, torch.Generator().manual_seed(0), max_shift=0, max_degrees=0)
    torch.testing.assert_close(out, x)


def test_thicker_strokes_widen_a_share_of_the_images_across_their_strokes_only():
    x = torch.zeros(2000, 28, 28)
    x[:, 6:21, 12] = 1.0  # an upright stroke, 15 px tall and 1 px wide
    x[:, 24, 4:11] = 0.5  # a level one, 7 px wide, half as bright
    out = random_strokes(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, random_strokes(x, torch.Generator().manual_seed(0)))
    upright, level = out[:, :22], out[:, 22:]
    wide = (upright > 0).sum((1, 2)) == 45  # 15 x 3: the stem a pixel wider on each side
    tall = (level > 0).sum((1, 2)) == 21  # 3 x 7: the bar a pixel taller on each side
    same = (out == x).flatten(1).all(1)
    assert (wide ^ tall ^ same).all() and not (wide & tall).any()  # each image one way
    assert torch.equal((upright[wide] > 0).sum(1)[:, 12], torch.full((int(wide.sum()),), 15))
    # along a stroke, only its ends move: the bar stays one row, the stem one column
    assert ((level[wide] > 0).sum(1) > 0).sum(1).eq(9).all()  # 7 px long, a pixel more each end
    assert (level[wide] > 0).any(2).sum(1).eq(1).all()
    assert (upright[tall] > 0).any(1).sum(1).eq(1).all()
    assert (upright[tall] > 0).sum((1, 2)).eq(17).all()
    assert set(out.unique().tolist()) == {0.0, 0.5, 1.0}  # ink only spread, never brightened
    # about 15% each way (binomial, 2,000 draws: 300 +- 16)
    assert 240 < wide.sum() < 360 and 240 < tall.sum() < 360
    assert random_strokes(x, torch.Generator().manual_seed(0), share=0.0).equal(x)


def test_the_recipe_picks_its_augmentation():
    assert augmentation(False, False) is None
    assert augmentation(True, False) is random_affine
    assert augmentation(False, True) is random_strokes
    x = torch.zeros(8, 28, 28)
    x[:, 8:20, 14] = 1
    both = augmentation(True, True)(x, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # warped, then thickened, from the same draws
    assert torch.equal(both, random_strokes(random_affine(x, g), g))


def test_a_recipe_with_thicker_strokes_learns_from_them(tiny):
    def weights(**kw):
        learn = build_learner(Recipe(hidden=(16,), batch_size=50, epochs=1, **kw), *tiny)
        learn.fit(1)
        return learn.train.augment, torch.cat([p.flatten() for p in learn.model.parameters()])

    aug, w = weights(augment=False, strokes=True)
    assert aug is random_strokes
    assert torch.equal(w, weights(augment=False, strokes=True)[1])  # the same seed, the same run
    assert not torch.equal(w, weights(augment=False, strokes=False)[1])  # it saw other pictures


def test_the_lr_finder_is_a_callback_on_the_one_fit_and_leaves_the_learner_as_it_was(tiny):
    events = []

    class Spy(Callback):
        order = -30  # before the finder: sees each batch's rate before the next one is set

        def before_fit(self, learn):
            events.append("before_fit")

        def after_batch(self, learn):
            events.append(learn.opt.lr)

        def after_fit(self, learn):
            events.append("after_fit")

    learn = build_learner(Recipe(hidden=(32,), batch_size=50), *tiny, cbs=[Spy()])
    cbs, test = list(learn.cbs), learn.test
    res = lr_find(learn, start_lr=1e-6, end_lr=1e-2, num_it=30)  # 3 epochs of 10 batches
    assert events[0] == "before_fit" and events[-1] == "after_fit"
    # every batch of the scan went through fit's events, at the rate the finder had set
    assert events[1:-1] == res.lrs and len(res.lrs) == 30
    assert learn.cbs == cbs and learn.test is test  # the OneCycle schedule and test split back
    assert any(isinstance(cb, OneCycle) for cb in learn.cbs)
