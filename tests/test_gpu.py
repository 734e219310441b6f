"""The CUDA path: run on a machine with a GPU (`pytest -m gpu`); skipped where there is none."""

import pytest
import torch

from mlp_core import Recipe, build_learner, load_checkpoint, load_mnist, usable_devices
from mlp_core.jobs import Trainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
]


def test_cuda_devices_are_listed_with_names():
    devices = dict(usable_devices())
    assert "cuda:0" in devices and torch.cuda.get_device_name(0) in devices["cuda:0"]


def test_one_epoch_on_cuda_keeps_data_on_the_gpu(mnist_root):
    recipe = Recipe(epochs=1, device="cuda")
    learn = build_learner(recipe, load_mnist(True, mnist_root), load_mnist(False, mnist_root))
    assert learn.train.split.images.device.type == "cuda"  # the whole split lives on the GPU
    assert learn.test.images.device.type == "cuda"
    learn.fit(1)
    assert learn.test_accuracy >= 0.90
    assert all(p.device.type == "cuda" for p in learn.model.parameters())


def test_same_seed_same_start_on_cpu_and_cuda(tiny_mnist):
    train, test = load_mnist(True, tiny_mnist), load_mnist(False, tiny_mnist)
    cpu = build_learner(Recipe(batch_size=50, seed=5), train, test)
    gpu = build_learner(Recipe(batch_size=50, seed=5, device="cuda"), train, test)
    for a, b in zip(cpu.model.parameters(), gpu.model.parameters()):
        assert torch.equal(a, b.cpu())


def test_job_on_cuda_saves_a_model_that_loads_on_cpu(tiny_mnist, tmp_path):
    trainer = Trainer(models_dir=tmp_path, data_dir=tiny_mnist)
    trainer.start(Recipe(epochs=2, batch_size=50, device="cuda:0"))
    snap = trainer.wait(120)
    assert snap.status == "finished", snap.message
    ckpt = load_checkpoint(snap.out)
    assert ckpt.test_accuracy == snap.test_accuracy and ckpt.recipe.device == "cuda:0"
    assert next(ckpt.model.parameters()).device.type == "cpu"
