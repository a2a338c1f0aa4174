"""Network building blocks for coordinate networks: sine layers, SIREN, positional encoding.

Everything here is method-neutral; the methods assemble their networks from these pieces with the
state_dict key names of their public code.

- :class:`Sine`, :class:`SineLayer`, :func:`siren_uniform_`: ``sin(w0 * (W x + b))`` with the SIREN
  initialisation (Sitzmann et al. 2020): first layer ``U(-1/n, 1/n)``, others ``U(-sqrt(c/n)/w0,
  sqrt(c/n)/w0)``, ``n`` the fan-in, ``c = 6``.
- :class:`Siren` and :func:`siren_parameters`: ``layers`` sine layers and a linear output.
- :class:`PositionalEncoding`: INRIC's NeRF-style encoding, the input followed by
  ``sin(sigma**i * pi * x_j), cos(sigma**i * pi * x_j)`` for ``i < L`` and every coordinate ``j``, in
  that order (``d + 2 d L`` features).

The fitting loop is :func:`sinr_adapters.framework.training.fit`; coordinate grids are in
:mod:`sinr_adapters.framework.grids`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["PositionalEncoding", "Sine", "SineLayer", "Siren", "siren_parameters", "siren_uniform_"]


class Sine(nn.Module):
    """``sin(w0 * x)``. ``w0`` is configuration, not state: it is not in the state_dict."""

    def __init__(self, w0: float = 30.0) -> None:
        super().__init__()
        self.w0 = float(w0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * x)

    def extra_repr(self) -> str:
        return f"w0={self.w0}"


def siren_uniform_(linear: nn.Linear, *, w0: float = 30.0, is_first: bool = False, c: float = 6.0,
                   bias: bool = True) -> nn.Linear:
    """SIREN initialisation in place: ``U(-1/n, 1/n)`` for the first layer, ``U(-sqrt(c/n)/w0, ...)``
    otherwise, ``n = in_features``; the bias too when ``bias`` (COIN does), else it keeps torch's default."""
    n = linear.in_features
    bound = (1.0 / n) if is_first else math.sqrt(c / n) / w0
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound)
        if bias and linear.bias is not None:
            linear.bias.uniform_(-bound, bound)
    return linear


class SineLayer(nn.Module):
    """``activation(linear(x))`` with SIREN initialisation; keys ``linear.weight``, ``linear.bias``.

    Parameters
    ----------
    dim_in, dim_out : int
        Fan-in and fan-out.
    w0 : float, default 30
        Frequency of the sine (and of the initialisation bound).
    is_first : bool, default False
        First layer of the network (initialised ``U(-1/dim_in, 1/dim_in)``).
    activation : nn.Module or None
        Defaults to :class:`Sine` ``(w0)``; ``nn.Identity()`` for a linear output layer.
    """

    def __init__(self, dim_in: int, dim_out: int, *, w0: float = 30.0, is_first: bool = False,
                 c: float = 6.0, activation: nn.Module | None = None) -> None:
        super().__init__()
        self.linear = siren_uniform_(nn.Linear(dim_in, dim_out), w0=w0, is_first=is_first, c=c)
        self.activation = Sine(w0) if activation is None else activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


class PositionalEncoding(nn.Module):
    """INRIC's NeRF-style positional encoding, concatenated with the input.

    ``[x, sin(s^0 pi x_0), cos(s^0 pi x_0), sin(s^0 pi x_1), cos(...), ..., cos(s^(L-1) pi x_(d-1))]``.

    Parameters
    ----------
    in_features : int
        ``d``, the coordinate dimension (2 for images, 3 for volumes, 1 for audio).
    num_frequencies : int
        ``L`` (INRIC's ``ff_dims``); 0 gives the identity.
    scale : float
        ``sigma`` (INRIC's ``encoding_scale``, 1.4 in its image experiments).

    Examples
    --------
    >>> pe = PositionalEncoding(2, num_frequencies=16, scale=1.4)
    >>> pe.out_dim
    66
    >>> tuple(pe(torch.zeros(5, 2)).shape)
    (5, 66)
    """

    def __init__(self, in_features: int, *, num_frequencies: int, scale: float) -> None:
        super().__init__()
        if in_features < 1 or num_frequencies < 0:
            raise ValueError("in_features must be >= 1 and num_frequencies >= 0")
        self.in_features = int(in_features)
        self.num_frequencies = int(num_frequencies)
        self.scale = float(scale)
        self.out_dim = self.in_features * (1 + 2 * self.num_frequencies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_frequencies == 0:
            return x
        freqs = math.pi * self.scale ** torch.arange(self.num_frequencies, dtype=x.dtype, device=x.device)
        arg = x[..., None, :] * freqs[:, None]                     # (..., L, d)
        enc = torch.stack((torch.sin(arg), torch.cos(arg)), dim=-1)  # (..., L, d, 2)
        return torch.cat((x, enc.flatten(-3)), dim=-1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_frequencies={self.num_frequencies}, scale={self.scale}"


class Siren(nn.Module):
    """A SIREN: ``layers`` sine layers of width ``width`` and a linear output.

    State_dict keys ``net.{i}.linear.weight`` / ``.bias`` and ``last.linear.weight`` / ``.bias``.

    Parameters
    ----------
    dim_in, dim_out : int
        Coordinate dimension and channels.
    width, layers : int
        Hidden width and number of sine layers.
    w0, w0_initial : float
        Sine frequency of the hidden layers and of the first layer (SIREN: 30; 3000 for audio's first).

    Examples
    --------
    >>> net = Siren(dim_in=1, dim_out=1, width=8, layers=2)
    >>> sum(p.numel() for p in net.parameters()) == siren_parameters(1, 1, 8, 2)
    True
    """

    def __init__(self, *, dim_in: int, dim_out: int, width: int, layers: int, w0: float = 30.0,
                 w0_initial: float = 30.0) -> None:
        super().__init__()
        self.net = nn.Sequential(*[
            SineLayer(dim_in if i == 0 else width, width, w0=w0_initial if i == 0 else w0, is_first=i == 0)
            for i in range(layers)])
        self.last = SineLayer(width, dim_out, w0=w0, activation=nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.net(x))


def siren_parameters(dim_in: int, dim_out: int, width: int, layers: int) -> int:
    """Parameters of :class:`Siren` (counted without building it)."""
    return (dim_in + 1) * width + (layers - 1) * (width + 1) * width + (width + 1) * dim_out
