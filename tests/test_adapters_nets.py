"""The framework's building blocks (nets), grids, metrics, the one fitting loop (training) and bundled images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sinr_adapters.framework import grids, metrics, nets, training
from sinr_adapters.framework.images import IMAGES, load_image
from sinr_adapters.methods.coin import coin_grid

pytestmark = pytest.mark.usefixtures("one_thread")


def test_positional_encoding_matches_inric_formula():
    pe = nets.PositionalEncoding(2, num_frequencies=3, scale=1.4)
    x = torch.tensor([[0.1, -0.7], [0.5, 0.25]])
    expected = []
    for row in x:
        feats = [row[0], row[1]]
        for i in range(3):
            for j in range(2):
                feats += [torch.sin(1.4 ** i * math.pi * row[j]), torch.cos(1.4 ** i * math.pi * row[j])]
        expected.append(torch.stack(feats))
    torch.testing.assert_close(pe(x), torch.stack(expected))
    assert pe.out_dim == 2 + 2 * 2 * 3
    assert nets.PositionalEncoding(2, num_frequencies=16, scale=1.4).out_dim == 66  # INRIC's image setting
    assert torch.equal(nets.PositionalEncoding(3, num_frequencies=0, scale=2.0)(x[:, :1].repeat(1, 3)),
                       x[:, :1].repeat(1, 3))


def test_siren_initialisation_bounds():
    torch.manual_seed(0)
    first = nets.SineLayer(2, 64, w0=30.0, is_first=True)
    hidden = nets.SineLayer(64, 64, w0=30.0)
    assert first.linear.weight.abs().max() <= 1 / 2
    assert hidden.linear.weight.abs().max() <= math.sqrt(6 / 64) / 30
    assert hidden.linear.weight.abs().max() > 0.8 * math.sqrt(6 / 64) / 30
    assert hidden.linear.bias.abs().max() <= math.sqrt(6 / 64) / 30
    assert set(hidden.state_dict()) == {"linear.weight", "linear.bias"}  # w0 is configuration, not state
    x = torch.randn(5, 64)
    torch.testing.assert_close(hidden(x), torch.sin(30.0 * hidden.linear(x)))


def test_grids():
    g = coin_grid(3, 4)
    assert g.shape == (12, 2)
    torch.testing.assert_close(g[0], torch.tensor([-1.0, -1.0]))
    torch.testing.assert_close(g[-1], torch.tensor([1.0, 3 / 2 * 2 - 1]))  # both axes divided by H - 1
    lg = grids.linspace_grid(3, 4)
    torch.testing.assert_close(lg[-1], torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(lg[1], torch.tensor([-1.0, -1.0 + 2 / 3]))
    assert grids.linspace_grid(5).shape == (5, 1)  # audio
    assert grids.linspace_grid(2, 3, 4).shape == (24, 3)  # volumes


def test_psnr_helpers():
    a = torch.zeros(10)
    assert metrics.psnr(a, a + 0.1) == pytest.approx(20.0)
    assert metrics.mse_to_psnr(0.0) == math.inf
    assert metrics.psnr_8bit(torch.tensor([1.7, -0.2]), torch.tensor([1.0, 0.0])) == math.inf  # clamped


def _toy():
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 200)[:, None]
    y = torch.sin(3 * x) * 0.5
    model = torch.nn.Sequential(nets.SineLayer(1, 16, is_first=True),
                                nets.SineLayer(16, 1, activation=torch.nn.Identity()))
    return model, x, y


def test_fit_full_batch_improves_and_keeps_best():
    model, x, y = _toy()
    log = training.fit(model, list(model.parameters()), x, y, steps=150, lr=1e-3, progress=False)
    assert log.steps == 150 and len(log.psnr) == 150
    assert log.psnr[-1] > log.psnr[0] + 5
    with torch.no_grad():
        final = float(torch.mean((model(x) - y) ** 2))
    assert final <= log.best_loss * (1 + 1e-5)  # the restored state is the best one seen


def test_fit_mini_batch_and_param_groups():
    model, x, y = _toy()
    groups = [{"params": list(model[0].parameters()), "lr": 1e-3}, {"params": list(model[1].parameters()), "lr": 3e-3}]
    log = training.fit(model, groups, x, y, steps=100, batch_size=32, progress=False, schedule="cosine",
                   generator=torch.Generator().manual_seed(0))
    assert log.steps == 100
    assert metrics.psnr(model(x), y) > log.psnr[0] + 5


def test_fit_rejects_bad_arguments():
    model, x, y = _toy()
    with pytest.raises(ValueError):
        training.fit(model, list(model.parameters()), x, y, steps=-1)
    with pytest.raises(ValueError):
        training.fit(model, list(model.parameters()), x, y, steps=1, schedule="linear")
    assert training.fit(model, list(model.parameters()), x, y, steps=0).steps == 0


def test_bundled_images():
    img = load_image("coffee", size=24)
    assert img.shape == (24, 24, 3) and img.dtype == np.float32
    assert np.allclose(img * 255, np.round(img * 255), atol=1e-4)  # 8-bit levels
    assert load_image("camera", size=8).shape == (8, 8, 3)  # grey replicated
    assert {"astronaut", "coffee", "chelsea"} <= set(IMAGES)
    with pytest.raises(KeyError, match="bundled images"):
        load_image("lena")
