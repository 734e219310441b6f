"""Hand-written layers against their torch.nn twins: values, gradients, shapes, parameters."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from mlp_core import DigitClassifier, Flatten, Linear, ReLU, Sequential


def check_like_torch(ours, theirs, x: torch.Tensor) -> None:
    """Same output, same input gradient, for our layer and PyTorch's expression."""
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ours(x1), theirs(x2)
    assert y1.shape == y2.shape and y1.dtype == y2.dtype
    assert_close(y1, y2)
    g = torch.randn_like(y1)
    y1.backward(g)
    y2.backward(g)
    assert_close(x1.grad, x2.grad)


@pytest.mark.parametrize("shape", [(5, 784), (1, 3), (64, 256)])
def test_linear_matches_torch(shape):
    torch.manual_seed(0)
    lin = Linear(shape[1], 7)
    # PyTorch stores (out, in); ours is (in, out) so forward reads x @ weight
    check_like_torch(lin, lambda x: F.linear(x, lin.weight.T, lin.bias), torch.randn(shape))


def test_linear_weight_gradients_match_torch():
    torch.manual_seed(0)
    ours, ref = Linear(10, 4), torch.nn.Linear(10, 4)
    with torch.no_grad():
        ref.weight.copy_(ours.weight.T)
        ref.bias.copy_(ours.bias)
    x = torch.randn(8, 10)
    ours(x).square().sum().backward()
    ref(x).square().sum().backward()
    assert_close(ours.weight.grad, ref.weight.grad.T)
    assert_close(ours.bias.grad, ref.bias.grad)


def test_linear_registers_parameters_and_repr():
    lin = Linear(784, 256)
    params = dict(lin.named_parameters())
    assert set(params) == {"weight", "bias"}
    assert params["weight"].shape == (784, 256) and params["bias"].shape == (256,)
    assert all(p.requires_grad for p in params.values())
    assert repr(lin) == "Linear(in_features=784, out_features=256, bias=True)"


@pytest.mark.parametrize("init, std", [("notebook", 0.1), ("kaiming", (2 / 784) ** 0.5)])
def test_init_scales(init, std):
    torch.manual_seed(0)
    lin = Linear(784, 512, init=init)
    assert abs(lin.weight.std().item() - std) < 0.05 * std
    with pytest.raises(ValueError, match="unknown init"):
        Linear(3, 3, init="zeros")


def test_relu_matches_torch():
    x = torch.tensor([[-2.0, -0.0, 0.0, 0.5, 3.0]])
    check_like_torch(ReLU(), F.relu, x)
    check_like_torch(ReLU(), F.relu, torch.randn(16, 32))


def test_flatten_matches_torch():
    check_like_torch(Flatten(), torch.nn.Flatten(), torch.randn(4, 28, 28))
    check_like_torch(Flatten(), torch.nn.Flatten(), torch.randn(4, 1, 28, 28))
    x = torch.randn(28, 3, 28).transpose(0, 1)  # non-contiguous: view() would fail
    assert Flatten()(x).shape == (3, 784)


def test_sequential_matches_torch_sequential():
    torch.manual_seed(0)
    a, b = Linear(6, 5), Linear(5, 2)
    ours = Sequential(a, ReLU(), b)
    ref = lambda x: F.linear(F.relu(F.linear(x, a.weight.T, a.bias)), b.weight.T, b.bias)
    check_like_torch(ours, ref, torch.randn(3, 6))
    assert len(list(ours.parameters())) == 4  # ModuleList registered both layers
    assert "(0): Linear(in_features=6, out_features=5, bias=True)" in repr(ours)


def test_digit_classifier_shapes_and_parameters():
    model = DigitClassifier()
    assert model(torch.rand(5, 28, 28)).shape == (5, 10)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(784, 256), (256,), (256, 64), (64,), (64, 10), (10,)]
    assert [lin.out_features for lin in DigitClassifier((32, 16, 8)).linears()] == [32, 16, 8, 10]
    assert "(1): Linear(in_features=784, out_features=256, bias=True)" in repr(model)
