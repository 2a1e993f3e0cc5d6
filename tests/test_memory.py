"""Table1 (docs/experiments.md) measured by agd.memory: optimiser state in units of the weights' bytes."""

import pytest
import torch

from agd import AGD
from agd.losses import SquareLoss
from agd.memory import measure
from agd.models import FCN

# FCN(depth 3, width 64, input (40,), 10 classes): 40·64 + 64·64 + 64·10 = 2,560 + 4,096 + 640 = 7,296
# float32 weights = 29,184 bytes, in 3 tensors.
WEIGHT_BYTES = 29_184


def run(make_optimizer):
    torch.manual_seed(0)
    model = FCN(depth=3, width=64, input_shape=(40,), num_classes=10)
    x, y = torch.randn(8, 40), torch.randint(0, 10, (8,))
    return measure(model, make_optimizer(model.parameters()), x, y, SquareLoss(10))


@pytest.mark.parametrize("foreach", [False, True], ids=["readable", "foreach"])
def test_agd_holds_no_per_parameter_state(foreach):
    report = run(lambda p: AGD(p, check_finite=False, foreach=foreach))
    assert report.parameter_bytes == WEIGHT_BYTES
    # only a few 0-d tensors (η, the gradient summary, the non-finite step counter when written),
    # nothing of a weight's size
    assert report.state_tensors == report.scalar_tensors
    assert 1 <= report.state_tensors <= 8 and report.state_bytes <= 8 * report.state_tensors
    # whatever it caches outside its state (a per-block step plan) is a few numbers per tensor
    assert report.cache_bytes < 0.01 * WEIGHT_BYTES
    assert report.total_multiple == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("foreach", [False, True], ids=["readable", "foreach"])
def test_agd_with_momentum_holds_one_copy(foreach):
    # the momentum variant (docs/beyond.md) keeps one moving average per weight: 2x in all
    report = run(lambda p: AGD(p, check_finite=False, momentum=0.9, orthogonalize=True, foreach=foreach))
    assert report.state_bytes - 8 * report.scalar_tensors <= WEIGHT_BYTES <= report.state_bytes
    assert report.state_tensors - report.scalar_tensors == 3  # one average per weight tensor
    assert report.total_multiple == pytest.approx(2.0, abs=0.01)


def test_sgd_momentum_holds_one_copy():
    plain = run(lambda p: torch.optim.SGD(p, lr=0.1))
    assert plain.state_bytes == 0
    report = run(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))
    assert report.state_bytes == WEIGHT_BYTES  # one momentum buffer per weight
    assert report.cache_bytes == 0 and report.total_multiple == 2.0


def test_adam_holds_two_copies():
    report = run(lambda p: torch.optim.Adam(p, lr=1e-3))
    # exp_avg and exp_avg_sq per weight, plus one 0-d float32 step counter per tensor
    assert report.state_bytes == 2 * WEIGHT_BYTES + 3 * 4
    assert report.total_multiple == pytest.approx(3.0, abs=1e-3)


def test_tensors_cached_outside_the_state_are_counted():
    class Caching(torch.optim.SGD):
        def step(self, closure=None):
            self.plan = {"buffer": torch.zeros(100)}  # 400 bytes kept in an attribute
            return super().step(closure)

    report = run(lambda p: Caching(p, lr=0.1))
    assert report.state_bytes == 0 and report.cache_bytes == 400 and report.cache_tensors == 1
