"""The shared implementation of the Adapter protocol for coordinate networks: :class:`INRAdapter`.

A method subclasses it and fills the hooks (the network, its coordinate conventions, which tensors SINR
codes and how the others are stored); fitting (:func:`~sinr_adapters.framework.training.fit`), fine-tuning
through the stored values' quantizers (:mod:`~sinr_adapters.framework.finetune`) and decoding are
implemented once here, and every stream is written and read by :mod:`~sinr_adapters.framework.records`
in the container of :mod:`~sinr_adapters.framework.container`. See
:mod:`sinr_adapters.framework.protocol` for the protocol itself and docs/writing-an-adapter.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from sinr_codecs.sparse import resolve_device

from . import records
from .container import fingerprint, meta_model_size
from .finetune import CompressionSetup, fake_storage, prepare
from .metrics import psnr_8bit
from .protocol import Decoded
from .signals import Signal
from .sinr_options import SINROptions
from .training import FitLog, fit, mse

__all__ = ["INRAdapter"]

Forward = Callable[[torch.Tensor], torch.Tensor]


class INRAdapter:
    """Shared implementation of :class:`~sinr_adapters.framework.protocol.Adapter` for coordinate networks.

    Hooks a method defines: ``name`` (class attribute, the entry-point name), :meth:`config` (JSON-safe
    constructor arguments, written into every stream), :meth:`build_model` (a fresh network;
    ``torch.manual_seed`` is set by the caller), :meth:`signal_from_image`, :meth:`coordinates` (for
    :meth:`render`), :meth:`sinr_tensor_names` and :meth:`storage` (``("h",)`` float16, ``("f",)`` float32 or
    ``("q", bits)`` uniform integers). Optional: :meth:`values_to_unit`, :meth:`sinr_layout`,
    :meth:`reference` (tensors the stored values are relative to), :meth:`fit_regularizer`, :meth:`loss`,
    :meth:`before_finetune`, :meth:`code_integers` / :meth:`decode_integers`, :meth:`stored_model`,
    :meth:`shared_fingerprint`, :meth:`with_config`, :meth:`from_shared_file`, and for decoding hostile
    streams :meth:`stream_model_size` and :meth:`check_stream_shape`.

    Every ``state_dict`` entry of the network is stored (:meth:`tensor_names`); a method whose records are
    not the per-tensor ones (COIN++, SHACIRA) overrides :meth:`compress_with_info` and :meth:`decompress`
    and builds them from :meth:`prepare_compression`, :meth:`finetune` and the container's functions.
    """

    name: ClassVar[str] = "inr"
    default_lr: ClassVar[float] = 1e-3
    """Learning rate of :meth:`fit` when none is given."""
    default_finetune_lr: ClassVar[float] = 1e-5
    """Fine-tuning learning rate without SINR when none is given."""
    default_sinr_lr: ClassVar[float] = 1e-3
    """Fine-tuning learning rate with SINR when none is given."""
    stream_config_defaults: ClassVar[dict[str, Any]] = {}
    """Configuration keys added after streams were first written, with the value older streams imply."""

    # ---- hooks -----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def signal_from_image(self, image: np.ndarray, *, name: str = "") -> Signal:
        raise NotImplementedError

    def coordinates(self, shape: Sequence[int]) -> torch.Tensor:
        raise NotImplementedError

    def sinr_tensor_names(self, model: nn.Module | None) -> list[str]:
        raise NotImplementedError

    def values_to_unit(self, values: torch.Tensor) -> torch.Tensor:
        """The method's values mapped to [0, 1] (default: unchanged)."""
        return values

    def sinr_layout(self, name: str, sinr: SINROptions) -> tuple[str, int | None]:
        """``(layout, block_size)`` with which SINR codes tensor ``name`` (default: ``sinr``'s)."""
        return sinr.layout, sinr.block_size

    def storage(self, name: str, tensor: torch.Tensor | None) -> tuple[Any, ...]:
        """How the method stores tensor ``name`` without SINR (default: float16)."""
        return ("h",)

    def fake_storage(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` rounded, straight-through, to what :meth:`storage` keeps (for fine-tuning)."""
        return fake_storage(tensor, self.storage(name, tensor))

    def reference(self) -> dict[str, torch.Tensor] | None:
        """Tensors the stored values are relative to (INRIC's ``theta0``), or ``None``."""
        return None

    def fit_regularizer(self, model: nn.Module) -> Callable[[], torch.Tensor] | None:
        """An extra loss term while fitting (INRIC's L1 on ``theta - theta0``), or ``None``."""
        return None

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The data term of fitting and fine-tuning (default: the mean squared error)."""
        return mse(prediction, target)

    def before_finetune(self, setup: CompressionSetup, forward: Forward, signal: Signal, info: dict[str, Any]) -> None:
        """A step between :meth:`prepare_compression` and the fine-tuning (INRIC's AdaRound); a method may
        change ``setup.trainable[k]`` in place and add entries to ``info``. Default: none."""

    def code_integers(self, ints: Sequence[np.ndarray]) -> bytes:
        """The integer section of the ``q`` tensors (default:
        :func:`~sinr_adapters.framework.records.brotli_integers`)."""
        return records.brotli_integers(ints)

    def decode_integers(self, payload: bytes, tensors: Sequence[tuple[int, int]]) -> bytes:
        """Inverse of :meth:`code_integers` for ``(numel, bits)`` of each ``q`` tensor (a :class:`StreamError`
        for a corrupt payload)."""
        return records.unbrotli_integers(payload, tensors)

    def stored_model(self, shape: Sequence[int]) -> nn.Module:
        """A network whose state_dict holds every stored tensor for a signal of ``shape`` (rate-aware
        decoding loads the decoded tensors into it). Default: :meth:`build_model`."""
        return self.build_model()

    def shared_fingerprint(self) -> str | None:
        """Fingerprint of the state shared beforehand that streams decode with (default: the reference
        weights'); its first 8 hex digits go into the header."""
        ref = self.reference()
        return None if ref is None else fingerprint(ref)

    def with_config(self, config: Mapping[str, Any]) -> INRAdapter:
        """An adapter of this class for a stream's configuration (decoding), with the same shared state."""
        return type(self)(**config)

    @classmethod
    def from_shared_file(cls, path: str | os.PathLike[str]) -> INRAdapter:
        """The adapter holding the shared state saved by a preparation (``Prepared.save``): meta-learned
        initialisations, base networks. Default: the method has none to load."""
        raise ValueError(f"{cls.name} keeps no shared state in a file: decode its streams without one")

    def stream_model_size(self, config: Mapping[str, Any]) -> tuple[int, int]:
        """``(stored tensors, parameters)`` of the network a stream's configuration describes, after
        checking what the constructor does not (:func:`~sinr_adapters.framework.container.config_number`).
        This default builds it on the meta device (:func:`~sinr_adapters.framework.container.meta_model_size`);
        a method overrides it with a count."""
        return meta_model_size(self, config)

    def check_stream_shape(self, shape: tuple[int, ...], config: Mapping[str, Any]) -> None:
        """Refuse (:class:`StreamError`) a signal shape a network of ``config`` cannot render (default:
        accept any non-empty shape within the safety limit)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    # ---- shared ----------------------------------------------------------------------------------
    def tensor_names(self, model: nn.Module) -> list[str]:
        """The stored tensors, in stream order: every entry of the model's state_dict."""
        return list(model.state_dict().keys())

    def fit(self, signal: Signal, *, steps: int, lr: float | None = None, batch_size: int | None = None,
            device: str = "auto", progress: bool | None = None, seed: int = 0,
            model: nn.Module | None = None) -> tuple[nn.Module, FitLog]:
        """Fit a fresh network (seeded by ``seed``) or continue fitting ``model`` on :meth:`loss`
        (:func:`~sinr_adapters.framework.training.fit`)."""
        dev = resolve_device(device)
        if model is None:
            torch.manual_seed(seed)
            model = self.build_model()
        model = model.to(dev)
        sig = signal.to(dev)
        log = fit(model, list(model.parameters()), sig.coords, sig.values, steps=steps, loss=self.loss,
                  lr=self.default_lr if lr is None else lr, batch_size=batch_size,
                  regularizer=self.fit_regularizer(model), value_peak=signal.peak, progress=progress,
                  desc=f"{self.name} fit", generator=torch.Generator().manual_seed(seed))
        return model, log

    @torch.no_grad()
    def predict(self, model: nn.Module, coords: torch.Tensor, *, chunk: int = 1 << 16) -> torch.Tensor:
        """``model`` at ``coords`` ``(N, d)``, in chunks, float32 ``(N, c)``."""
        dev = next(model.parameters()).device
        return torch.cat([model(coords[i:i + chunk].to(dev)) for i in range(0, coords.shape[0], chunk)]).float()

    def render(self, model: nn.Module, shape: Sequence[int]) -> np.ndarray:
        """The signal decoded by ``model`` on the grid of ``shape``, mapped to [0, 1] (not clamped)."""
        shape = tuple(int(s) for s in shape)
        out = self.predict(model, self.coordinates(shape[:-1]))
        return self.values_to_unit(out).reshape(shape).cpu().numpy()

    def psnr(self, model: nn.Module, signal: Signal) -> float:
        """PSNR of ``model`` on ``signal`` after clamping to [0, 1] and rounding to 8 bits."""
        out = self.predict(model, signal.coords)
        return psnr_8bit(self.values_to_unit(out), self.values_to_unit(signal.values.to(out.device)))

    def prepare_compression(self, model: nn.Module, sinr: SINROptions | None) -> CompressionSetup:
        """SINR's OMP fit and the tensors to fine-tune (:func:`~sinr_adapters.framework.finetune.prepare`)."""
        return prepare(self, model, sinr)

    def finetune_learning_rate(self, *, with_sinr: bool, finetune_lr: float | None = None,
                               sinr_lr: float | None = None) -> float:
        """``sinr_lr`` with SINR, ``finetune_lr`` without; ``None``: the class's default."""
        if with_sinr:
            return self.default_sinr_lr if sinr_lr is None else float(sinr_lr)
        return self.default_finetune_lr if finetune_lr is None else float(finetune_lr)

    def compress(self, model: nn.Module, signal: Signal, *, sinr: SINROptions | None = None,
                 finetune_steps: int = 0, finetune_lr: float | None = None, sinr_lr: float | None = None,
                 schedule: str = "cosine", batch_size: int | None = None, progress: bool | None = None) -> bytes:
        """Write ``model`` as this method stores it, optionally with SINR.

        Parameters
        ----------
        model : nn.Module
            The fitted network (not modified).
        signal : Signal
            The signal it was fitted to (fine-tuning target; its shape goes into the stream).
        sinr : SINROptions or None
            ``None``: the method's own storage only; else the tensors of :meth:`sinr_tensor_names` are
            SINR-coded first.
        finetune_steps : int, default 0
            Adam steps through the straight-through quantizers before writing (give both paths the same).
        finetune_lr, sinr_lr : float or None
            Learning rate without / with SINR (None: ``default_finetune_lr`` / ``default_sinr_lr``).
        schedule : {"cosine", "constant"}, default "cosine"
        batch_size : int or None
            Mini-batch size of the fine-tuning (None: full batch, and the best step is kept).
        """
        return self.compress_with_info(model, signal, sinr=sinr, finetune_steps=finetune_steps, finetune_lr=finetune_lr,
                                       sinr_lr=sinr_lr, schedule=schedule, batch_size=batch_size, progress=progress)[0]

    def compress_with_info(self, model: nn.Module, signal: Signal, *, sinr: SINROptions | None = None,
                           finetune_steps: int = 0, finetune_lr: float | None = None, sinr_lr: float | None = None,
                           schedule: str = "cosine", batch_size: int | None = None,
                           progress: bool | None = None) -> tuple[bytes, dict[str, Any]]:
        """:meth:`compress` plus what happened (OMP and fine-tuning time, byte split, the fine-tuned loss
        and, for images, PSNR through the straight-through quantizers)."""
        setup = self.prepare_compression(model, sinr)
        info: dict[str, Any] = {"omp_seconds": setup.omp_seconds}
        log = self.finetune(model, setup, signal, info, steps=finetune_steps, finetune_lr=finetune_lr,
                            sinr_lr=sinr_lr, schedule=schedule, batch_size=batch_size, progress=progress)
        return records.write_stream(self, setup, signal.shape, log, info), info

    def finetune(self, model: nn.Module, setup: CompressionSetup, signal: Signal, info: dict[str, Any], *,
                 steps: int, finetune_lr: float | None = None, sinr_lr: float | None = None,
                 schedule: str = "cosine", batch_size: int | None = None, progress: bool | None = None) -> FitLog:
        """:meth:`before_finetune`, then ``steps`` of :func:`~sinr_adapters.framework.training.fit` on
        ``setup.trainable`` through :meth:`CompressionSetup.tensor` (mini-batches seeded 0); adds
        ``finetune_seconds``, ``loss_finetuned`` and, for images, ``psnr_finetuned`` to ``info``."""
        def forward(x: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(model, {k: setup.tensor(k) for k in setup.names}, (x,))

        sig = signal.to(setup.device)
        self.before_finetune(setup, forward, sig, info)
        t0 = time.perf_counter()
        lr = self.finetune_learning_rate(with_sinr=bool(setup.codes), finetune_lr=finetune_lr, sinr_lr=sinr_lr)
        log = fit(forward, list(setup.trainable.values()), sig.coords, sig.values, steps=steps, lr=lr, loss=self.loss,
                  schedule=schedule, batch_size=batch_size, value_peak=signal.peak, progress=progress,
                  desc=f"{self.name}{'+sinr' if setup.codes else ''} fine-tune",
                  generator=torch.Generator().manual_seed(0))
        info["finetune_seconds"] = time.perf_counter() - t0
        with torch.no_grad():
            out = forward(sig.coords)
            info["loss_finetuned"] = float(self.loss(out, sig.values))
            if signal.kind == "image":
                info["psnr_finetuned"] = psnr_8bit(self.values_to_unit(out), self.values_to_unit(sig.values))
        return log

    def decompress(self, data: bytes, *, device: str = "cpu") -> Decoded:
        """Rebuild the model a stream describes (:func:`~sinr_adapters.framework.records.read_tensors`;
        needs this adapter's reference weights, if any)."""
        adapter, header, tensors = records.read_tensors(self, data)
        model = adapter.build_model()
        model.load_state_dict(tensors, strict=True)
        shape = tuple(int(s) for s in header["shape"])
        return Decoded(model=model.to(resolve_device(device)), shape=shape, header=dict(header))

    def decode(self, data: bytes, *, device: str = "cpu") -> np.ndarray:
        """Stream -> signal (:meth:`decompress` + :meth:`render`)."""
        dec = self.decompress(data, device=device)
        return self.render(dec.model, dec.shape)
