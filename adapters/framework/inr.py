"""The shared implementation of the Adapter protocol for coordinate networks: :class:`INRAdapter`.

A method subclasses it and supplies the network, the coordinate conventions, which tensors SINR codes and
how the rest are stored (the hooks listed in the class docstring); fitting, fine-tuning through the
stored values' quantizers, the stream (:mod:`sinr_adapters.framework.container`) and decoding are implemented once
here. See :mod:`sinr_adapters.framework.protocol` for the protocol itself and docs/adapters.md for a walk-through.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import brotli
import numpy as np
import torch
from sinr_codecs import options
from sinr_codecs.errors import StreamError
from sinr_codecs.sparse import SparseCode, resolve_device
from torch import nn

from . import container, nets
from .container import (
    MAX_STREAM_PARAMETERS,
    MAX_STREAM_TENSORS,
    Reader,
    check_config_value,
    fingerprint,
    from_stored_uniform,
    inflate,
    read_quantizer,
    sparse_tensor_from_bytes,
    stored_uniform,
    strip_checksum,
    write_section,
)
from .finetune import CompressionSetup, replace_code
from .protocol import Decoded
from .signals import Signal
from .sinr_options import SINROptions

__all__ = ["INRAdapter"]


class INRAdapter:
    """Shared implementation of :class:`~sinr_adapters.framework.protocol.Adapter` for coordinate networks (subclass
    and fill the hooks).

    Hooks a method defines:

    - ``name`` (class attribute) and :meth:`config` (JSON-safe constructor arguments).
    - :meth:`build_model`: a freshly initialised network (``torch.manual_seed`` is set by the caller).
    - :meth:`signal_from_image` and :meth:`values_to_unit`: the method's coordinate / value conventions
      (an image method's ``signal_from_image`` is :func:`sinr_adapters.framework.signals.image_signal` with its grid).
    - :meth:`coordinates`: coordinates for a signal shape (used by :meth:`render`).
    - :meth:`sinr_tensor_names`: which tensors SINR codes when asked; :meth:`sinr_layout`: their vector
      layout (default: the :class:`SINROptions` layout).
    - :meth:`storage`: how the method itself stores one tensor: ``("h",)`` float16, ``("f",)`` float32 or
      ``("q", bits)`` uniform integers (Brotli-coded together).
    - :meth:`reference`: tensors that stored values are relative to (INRIC's ``theta0``), or ``None``.
    - :meth:`fit_regularizer`: an extra loss during fitting (INRIC's L1 on ``theta - theta0``), or ``None``.

    A method with its own records (COIN++, SHACIRA) overrides :meth:`compress_with_info` and
    :meth:`decompress`, and builds them from :meth:`prepare_compression` (OMP fit and trainable tensors),
    :meth:`finetune_learning_rate`, :meth:`write_header` / :meth:`finish_stream`, :meth:`open_stream`,
    and the stream helpers of :mod:`sinr_adapters.framework.container` (:func:`~sinr_adapters.framework.container.write_section`,
    :class:`~sinr_adapters.framework.container.Reader`, :func:`~sinr_adapters.framework.container.sparse_tensor_from_bytes`).
    """

    name: ClassVar[str] = "inr"
    default_lr: ClassVar[float] = 1e-3
    default_finetune_lr: ClassVar[float] = 1e-5
    default_sinr_lr: ClassVar[float] = 1e-3
    stream_config_defaults: ClassVar[dict[str, Any]] = {}
    """Configuration keys added after streams were first written, with the value older streams imply: a
    stream whose configuration lacks exactly these keys is read with them (nothing already written is
    lost when an adapter gains an option)."""

    # ---- hooks -----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def signal_from_image(self, image: np.ndarray, *, name: str = "") -> Signal:
        raise NotImplementedError

    def coordinates(self, shape: Sequence[int]) -> torch.Tensor:
        raise NotImplementedError

    def values_to_unit(self, values: torch.Tensor) -> torch.Tensor:
        return values

    def sinr_tensor_names(self, model: nn.Module) -> list[str]:
        raise NotImplementedError

    def sinr_layout(self, name: str, sinr: SINROptions) -> tuple[str, int | None]:
        """``(layout, block_size)`` with which SINR codes tensor ``name`` (see :class:`SINROptions`)."""
        return sinr.layout, sinr.block_size

    def storage(self, name: str, tensor: torch.Tensor) -> tuple:
        return ("h",)

    def reference(self) -> dict[str, torch.Tensor] | None:
        return None

    def fit_regularizer(self, model: nn.Module) -> Any:
        return None

    def stored_model(self, shape: Sequence[int]) -> nn.Module:
        """A fresh network for a signal of ``shape`` (grid shape, then channels) whose state_dict holds
        every stored tensor (:meth:`tensor_names`): rate-aware decoding (:mod:`sinr_adapters.rate_coding.rate_aware`)
        finds the tensors' shapes on it (on the meta device) and loads the decoded ones into it.
        Default: :meth:`build_model` (what is stored does not depend on the signal's size)."""
        return self.build_model()

    def shared_fingerprint(self) -> str | None:
        """Hex fingerprint of the state shared beforehand that a stream decodes with (its first 8 digits
        go into the header): by default the reference weights' (:meth:`reference`), None without any."""
        ref = self.reference()
        return None if ref is None else fingerprint(ref)

    def with_config(self, config: Mapping[str, Any]) -> INRAdapter:
        """An adapter of this class for a stream's configuration (decoding); same reference weights."""
        return type(self)(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    # ---- shared ----------------------------------------------------------------------------------
    def tensor_names(self, model: nn.Module) -> list[str]:
        """The stored tensors, in stream order (the model's state_dict order)."""
        return list(model.state_dict().keys())

    def fit(self, signal: Signal, *, steps: int, lr: float | None = None, batch_size: int | None = None,
            device: str = "auto", progress: bool | None = None, seed: int = 0,
            model: nn.Module | None = None) -> tuple[nn.Module, nets.FitLog]:
        """Fit a fresh network (seeded by ``seed``) or continue fitting ``model``; see :func:`nets.fit`."""
        dev = resolve_device(device)
        if model is None:
            torch.manual_seed(seed)
            model = self.build_model()
        model = model.to(dev)
        sig = signal.to(dev)
        reg = self.fit_regularizer(model)
        gen = torch.Generator().manual_seed(seed)
        log = nets.fit(model, list(model.parameters()), sig.coords, sig.values, steps=steps,
                       lr=self.default_lr if lr is None else lr, batch_size=batch_size, regularizer=reg,
                       value_peak=signal.peak, progress=progress, desc=f"{self.name} fit", generator=gen)
        return model, log

    @torch.no_grad()
    def predict(self, model: nn.Module, coords: torch.Tensor, *, chunk: int = 1 << 16) -> torch.Tensor:
        dev = next(model.parameters()).device
        outs = [model(coords[i:i + chunk].to(dev)) for i in range(0, coords.shape[0], chunk)]
        return torch.cat(outs).float()

    def render(self, model: nn.Module, shape: Sequence[int]) -> np.ndarray:
        """The signal decoded by ``model`` on the grid of ``shape``, mapped to [0, 1] (not clamped)."""
        shape = tuple(int(s) for s in shape)
        out = self.predict(model, self.coordinates(shape[:-1]))
        return self.values_to_unit(out).reshape(shape).cpu().numpy()

    def psnr(self, model: nn.Module, signal: Signal) -> float:
        """PSNR of ``model`` on ``signal`` after clamping to [0, 1] and rounding to 8 bits."""
        out = self.predict(model, signal.coords)
        return nets.psnr_8bit(self.values_to_unit(out), self.values_to_unit(signal.values.to(out.device)))

    # compress ------------------------------------------------------------------------------------
    def prepare_compression(self, model: nn.Module, sinr: SINROptions | None) -> CompressionSetup:
        """The compression set-up shared by every adapter: SINR's OMP fit and the tensors to fine-tune.

        Copies the stored tensors (:meth:`tensor_names`) of ``model`` as float32 on its device, makes
        them relative to :meth:`reference` (if any), fits a :class:`sinr_codecs.sparse.SparseCode` to each
        tensor of :meth:`sinr_tensor_names` (with ``sinr``; the ``i``-th in stream order with seed
        ``sinr.seed + i`` and the layout of :meth:`sinr_layout`), and makes one trainable leaf tensor per
        stored tensor: the sparse values of a SINR-coded one, the stored values of the others.

        Parameters
        ----------
        model : nn.Module
            The fitted network (not modified).
        sinr : SINROptions or None
            ``None``: nothing is SINR-coded.

        Returns
        -------
        CompressionSetup
            Codes, trainable tensors, storage specs and the OMP time (``omp_seconds``).
        """
        dev = next(model.parameters()).device
        names = self.tensor_names(model)
        stored = set(names)
        state = {k: v.detach().to(dev, torch.float32).clone() for k, v in model.state_dict().items() if k in stored}
        ref = self.reference()
        if ref is not None:
            ref = {k: ref[k].to(dev, torch.float32) for k in names}
        coded = {k: state[k] - ref[k] if ref is not None else state[k] for k in names}

        sinr_names = set(self.sinr_tensor_names(model)) if sinr is not None else set()
        codes: dict[str, Any] = {}
        t0 = time.perf_counter()
        if sinr_names:
            last = sinr.seed + len(sinr_names) - 1
            if last > options.MAX_SEED:
                raise ValueError(f"SINR seed {sinr.seed}: the {len(sinr_names)} coded tensors use seeds up to "
                                 f"seed + {len(sinr_names) - 1} = {last}, above the largest seed {options.MAX_SEED}; "
                                 f"use a seed <= {options.MAX_SEED - len(sinr_names) + 1}")
            for i, k in enumerate(n for n in names if n in sinr_names):
                layout, block_size = self.sinr_layout(k, sinr)
                codes[k] = SparseCode.fit(coded[k], sparsity=sinr.sparsity,
                                          dictionary_ratio=sinr.dictionary_ratio, seed=sinr.seed + i,
                                          layout=layout, block_size=block_size, device=sinr.device)
        nets.synchronize(dev)
        omp_seconds = time.perf_counter() - t0

        # trainable tensors: sparse values of SINR-coded tensors, the coded tensors of the others
        trainable: dict[str, torch.Tensor] = {}
        for k in names:
            if k in codes:
                v = codes[k].values.detach().to(dev, torch.float32).clone()
                codes[k] = replace_code(codes[k], values=v, indices=codes[k].indices.to(dev))
                trainable[k] = v.requires_grad_(True)
            else:
                trainable[k] = coded[k].clone().requires_grad_(True)
        specs = {k: self.storage(k, state[k]) for k in names if k not in codes}
        return CompressionSetup(names=names, state=state, reference=ref, codes=codes, trainable=trainable,
                                specs=specs, sinr=sinr, device=dev, omp_seconds=omp_seconds)

    def finetune_learning_rate(self, *, with_sinr: bool, finetune_lr: float | None = None,
                               sinr_lr: float | None = None) -> float:
        """The fine-tuning learning rate: ``sinr_lr`` with SINR, ``finetune_lr`` without; ``None`` means
        the adapter's ``default_sinr_lr`` / ``default_finetune_lr``."""
        if with_sinr:
            return self.default_sinr_lr if sinr_lr is None else float(sinr_lr)
        return self.default_finetune_lr if finetune_lr is None else float(finetune_lr)

    def compress(self, model: nn.Module, signal: Signal, *, sinr: SINROptions | None = None,
                 finetune_steps: int = 0, finetune_lr: float | None = None, sinr_lr: float | None = None,
                 schedule: str = "cosine", batch_size: int | None = None,
                 progress: bool | None = None) -> bytes:
        """Write ``model`` as this method stores it, optionally with SINR (see the module docstring).

        Parameters
        ----------
        model : nn.Module
            The fitted network (not modified).
        signal : Signal
            The signal it was fitted to (fine-tuning target; its shape goes into the stream).
        sinr : SINROptions or None
            ``None``: the method's own storage only. Otherwise the tensors of :meth:`sinr_tensor_names`
            are SINR-coded first.
        finetune_steps : int, default 0
            Adam steps through the straight-through quantizers before writing (give both paths the same).
        finetune_lr, sinr_lr : float or None
            Learning rate without / with SINR (None: the adapter's ``default_finetune_lr`` /
            ``default_sinr_lr``). With SINR every trainable tensor (sparse values and the tensors SINR
            leaves alone) uses ``sinr_lr``.
        schedule : {"cosine", "constant"}, default "cosine"
        batch_size : int or None
            Mini-batch size of the fine-tuning (None: full batch, and the best step is kept).
        """
        return self.compress_with_info(model, signal, sinr=sinr, finetune_steps=finetune_steps,
                                       finetune_lr=finetune_lr, sinr_lr=sinr_lr, schedule=schedule,
                                       batch_size=batch_size, progress=progress)[0]

    def compress_with_info(self, model: nn.Module, signal: Signal, *, sinr: SINROptions | None = None,
                           finetune_steps: int = 0, finetune_lr: float | None = None,
                           sinr_lr: float | None = None, schedule: str = "cosine",
                           batch_size: int | None = None, progress: bool | None = None
                           ) -> tuple[bytes, dict[str, Any]]:
        """:meth:`compress` plus a dict of what happened (OMP and fine-tuning time, byte split, the
        fine-tuned PSNR through the straight-through quantizers)."""
        info: dict[str, Any] = {}
        setup = self.prepare_compression(model, sinr)
        info["omp_seconds"] = setup.omp_seconds
        dev, names, codes = setup.device, setup.names, setup.codes

        def forward(x: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(model, {k: setup.tensor(k) for k in names}, (x,))

        sig = signal.to(dev)
        self.before_finetune(setup, forward, sig, info)
        t1 = time.perf_counter()
        lr = self.finetune_learning_rate(with_sinr=bool(codes), finetune_lr=finetune_lr, sinr_lr=sinr_lr)
        log = nets.fit(forward, list(setup.trainable.values()), sig.coords, sig.values, steps=finetune_steps, lr=lr,
                       schedule=schedule, batch_size=batch_size, value_peak=signal.peak, progress=progress,
                       desc=f"{self.name}{'+sinr' if codes else ''} fine-tune")
        info["finetune_seconds"] = time.perf_counter() - t1
        with torch.no_grad():
            out = self.values_to_unit(forward(sig.coords))
            info["psnr_finetuned"] = nets.psnr_8bit(out, self.values_to_unit(sig.values))
        return self.write_stream(setup, signal.shape, log, info), info

    def before_finetune(self, setup: CompressionSetup, forward: Callable[[torch.Tensor], torch.Tensor],
                        signal: Signal, info: dict[str, Any]) -> None:
        """A step between :meth:`prepare_compression` and the quantization-aware fine-tuning of
        :meth:`compress_with_info` (default: none; INRIC runs AdaRound here).

        Parameters
        ----------
        setup : CompressionSetup
            The tensors about to be fine-tuned; a method may change ``setup.trainable[k]`` in place.
        forward : callable
            ``forward(coords) -> values`` of the network through the stored values' quantizers.
        signal : Signal
            The signal, on the setup's device.
        info : dict
            What happened so far (a method may add its own entries).
        """

    def write_records(self, setup: CompressionSetup, shape: Sequence[int],
                      store: Callable[[io.BytesIO, str, torch.Tensor], None]) -> tuple[io.BytesIO, int, int]:
        """Start a stream: the header, then one record per tensor of ``setup.names`` in order.

        A SINR-coded tensor is written as a section holding its code (:meth:`CompressionSetup.code_bytes`);
        any other is handed to ``store(buf, name, tensor)`` (the fine-tuned tensor, float32 on the CPU),
        which writes its record to ``buf``.

        Parameters
        ----------
        setup : CompressionSetup
            From :meth:`prepare_compression`, after fine-tuning.
        shape : sequence of int
            The signal's shape (header).
        store : callable
            ``store(buf, name, tensor) -> None`` for the tensors SINR did not code.

        Returns
        -------
        buf : io.BytesIO
            The stream so far.
        header_bytes, sinr_bytes : int
            Bytes of the header and of the SINR sections.
        """
        codes, ref = setup.codes, setup.reference
        buf = io.BytesIO()
        hlen = self.write_header(buf, shape, sinr=bool(codes), ref=None if ref is None else fingerprint(ref))
        sinr_bytes = 0
        with torch.no_grad():
            for k in setup.names:
                if k in codes:
                    sinr_bytes += write_section(buf, setup.code_bytes(k))
                    continue
                store(buf, k, setup.trainable[k].detach().cpu().float())
        return buf, hlen, sinr_bytes

    def write_stream(self, setup: CompressionSetup, shape: Sequence[int], log: nets.FitLog,
                     info: dict[str, Any]) -> bytes:
        """The whole stream (module docstring) of a fine-tuned ``setup``; adds the byte split, the
        fine-tuning ``log`` and the SINR-coded tensor names to ``info``.

        Tensors SINR did not code are stored as :meth:`storage` says: float16, float32, or a uniform
        quantizer record whose integers go, concatenated, into one integer section (:meth:`code_integers`:
        Brotli unless a method codes it otherwise).
        """
        ints: list[np.ndarray] = []

        def store(buf: io.BytesIO, k: str, t: torch.Tensor) -> None:
            spec = setup.specs[k]
            if spec[0] == "h":
                buf.write(t.numpy().astype("<f2").tobytes())
            elif spec[0] == "f":
                buf.write(t.numpy().astype("<f4").tobytes())
            elif spec[0] == "q":
                record, q = stored_uniform(t, int(spec[1]))
                buf.write(record)
                ints.append(q)
            else:  # pragma: no cover - a hook bug
                raise ValueError(f"unknown storage {spec!r} for tensor {k!r}")

        buf, hlen, sinr_bytes = self.write_records(setup, shape, store)
        int_bytes = write_section(buf, self.code_integers(ints) if ints else b"")
        data = self.finish_stream(buf)
        info.update(header_bytes=hlen, sinr_bytes=sinr_bytes, int_bytes=int_bytes, checksum_bytes=4,
                    finetune_log=log.to_dict(), sinr_tensors=sorted(setup.codes))
        return data

    def code_integers(self, ints: Sequence[np.ndarray]) -> bytes:
        """The integer section's payload: the stored integers of every ``q`` tensor (each from
        :func:`~sinr_adapters.framework.container.stored_uniform`, in record order), Brotli-coded (quality 11).
        :meth:`decode_integers` is the inverse."""
        return brotli.compress(b"".join(a.tobytes() for a in ints), quality=11)

    def decode_integers(self, payload: bytes, tensors: Sequence[tuple[int, int]]) -> bytes:
        """Inverse of :meth:`code_integers`: the integers of the ``q`` tensors, concatenated as written
        (one byte each up to 8 bits, else little-endian u16).

        Parameters
        ----------
        payload : bytes
            The integer section (not empty).
        tensors : sequence of (int, int)
            ``(numel, bits)`` of each ``q`` tensor, in record order.

        Raises
        ------
        StreamError
            If the payload is corrupt or holds another number of bytes.
        """
        expected = sum(n * (1 if b <= 8 else 2) for n, b in tensors)
        return inflate(payload, expected, "integer section")

    # stream header and checksum ----------------------------------------------------------------
    def write_header(self, buf: io.BytesIO, shape: Sequence[int], *, sinr: bool, ref: str | None) -> int:
        """Write this adapter's stream header (:func:`sinr_adapters.framework.container.write_header`: its name and
        :meth:`config`) and return its length in bytes.

        Parameters
        ----------
        buf : io.BytesIO
            An empty buffer: the stream being written.
        shape : sequence of int
            The signal's shape (grid shape followed by channels).
        sinr : bool
            Whether SINR coded the tensors of :meth:`sinr_tensor_names` (header flag 1).
        ref : str or None
            Hex fingerprint of the weights the stored values are relative to (its first 8 hex digits
            are stored, flag 2), or ``None``.
        """
        return container.write_header(buf, self.name, self.config(), shape, sinr=sinr, ref=ref)

    @staticmethod
    def finish_stream(buf: io.BytesIO) -> bytes:
        """Append the CRC-32 of everything written (:func:`sinr_adapters.framework.container.finish_stream`);
        :meth:`open_stream` checks and strips it."""
        return container.finish_stream(buf)

    @staticmethod
    def read_header(data: bytes) -> tuple[dict[str, Any], int]:
        """Parse the stream header (:func:`sinr_adapters.framework.container.read_header`):
        ``({"method", "config" (list), "shape", "sinr", "ref"}, offset)``."""
        return container.read_header(data)

    # decompress ----------------------------------------------------------------------------------
    def open_stream(self, data: bytes) -> tuple[dict, int, bytes, dict]:
        """Check a stream's magic bytes and checksum, then its header: method, configuration
        (:meth:`check_stream_config`: types, ranges, network size) and signal shape (at most
        :data:`MAX_STREAM_PARAMETERS` values, :meth:`check_stream_shape`). Nothing is built.

        Returns ``(header, pos, body, config)``: the parsed header, the offset just past it, the stream
        without its trailing CRC-32, and the configuration as a dict keyed like :meth:`config`.
        """
        body = strip_checksum(data)
        header, pos = self.read_header(body)  # the checksum first: a corrupt header says so
        if header["method"] != self.name:
            raise StreamError(f"stream was written by adapter {header['method']!r}, not {self.name!r}")
        own = self.config()
        keys = sorted(own)
        values = header["config"]
        older = sorted(k for k in own if k not in self.stream_config_defaults)
        if len(values) == len(keys):
            config = dict(zip(keys, values))
        elif self.stream_config_defaults and len(values) == len(older):  # written before the keys existed
            config = {**dict(zip(older, values)), **self.stream_config_defaults}
        else:
            raise StreamError(f"stream configuration has {len(values)} entries, {self.name!r} "
                              f"expects {len(keys)}: written by another version of the adapter?")
        self.check_stream_config(config)
        shape = header["shape"]
        if len(shape) < 2 or min(shape) < 1 or math.prod(shape) > MAX_STREAM_PARAMETERS:
            raise StreamError(f"signal shape {shape} is empty or exceeds the safety limit of "
                              f"{MAX_STREAM_PARAMETERS} values")
        self.check_stream_shape(shape, config)
        return header, pos, body, config

    def check_stream_config(self, config: Mapping[str, Any]) -> None:
        """Refuse a stream's configuration before anything is built from it (called by :meth:`open_stream`).

        Every value must have the JSON type of this adapter's own :meth:`config` value (integers are
        integers, floats are finite numbers, lists have the same length), then
        :meth:`stream_model_size` checks ranges and sizes the network: at most
        :data:`MAX_STREAM_TENSORS` stored tensors and :data:`MAX_STREAM_PARAMETERS` parameters.

        Raises
        ------
        StreamError
            If a value is of the wrong type, out of range, or describes a network beyond the limits.
        """
        own = self.config()
        for key, value in config.items():
            check_config_value(key, value, own[key])
        tensors, params = self.stream_model_size(config)
        if tensors > MAX_STREAM_TENSORS or params > MAX_STREAM_PARAMETERS:
            raise StreamError(f"the stream's network ({tensors} tensors, {params} parameters) exceeds the safety "
                              f"limit of {MAX_STREAM_TENSORS} tensors and {MAX_STREAM_PARAMETERS} parameters")

    def stream_model_size(self, config: Mapping[str, Any]) -> tuple[int, int]:
        """``(stored tensors, parameters)`` of the network a stream's configuration describes.

        A method overrides this with a count from the configuration alone, after checking the ranges
        the constructor does not (:func:`config_number`), so that a hostile configuration is refused
        without building anything. This default builds the network on the meta device (no memory, but
        time proportional to its number of modules).

        Parameters
        ----------
        config : mapping
            The stream's configuration, keyed like :meth:`config`, of the right JSON types.

        Raises
        ------
        StreamError
            If no network of this adapter has that configuration.
        """
        try:
            with torch.device("meta"):
                probe = type(self)(**config).build_model()
        except (TypeError, ValueError, OverflowError, RuntimeError) as exc:
            if isinstance(exc, StreamError):
                raise
            raise StreamError(f"bad configuration in stream: {exc}") from exc
        return len(self.tensor_names(probe)), sum(p.numel() for p in probe.parameters())

    def check_stream_shape(self, shape: tuple[int, ...], config: Mapping[str, Any]) -> None:
        """Refuse (:class:`StreamError`) a signal shape that a network of ``config`` cannot render.

        Called by :meth:`open_stream` once the shape is known to be non-empty and within the safety
        limit; the default accepts any such shape.
        """

    def stream_adapter(self, config: Mapping[str, Any]) -> INRAdapter:
        """:meth:`with_config` for a configuration read from a stream (checked by :meth:`open_stream`):
        a constructor's refusal becomes a :class:`StreamError`."""
        try:
            return self.with_config(config)
        except (TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, StreamError):
                raise
            raise StreamError(f"bad configuration in stream: {exc}") from exc

    def decompress(self, data: bytes, *, device: str = "cpu") -> Decoded:
        """Rebuild the model a stream describes (needs this adapter's reference weights, if any).

        Every record is located and its length checked against the network's tensor shapes (found on
        the meta device) before the network is built or any tensor allocated.
        """
        header, pos, data, config = self.open_stream(data)
        n_tensors, _ = self.stream_model_size(config)
        if n_tensors >= len(data) - pos:  # every tensor record and the integer section take a byte at least
            raise StreamError(f"stream truncated: its network stores {n_tensors} tensors, only {len(data) - pos} "
                              "bytes follow the header")
        adapter = self.stream_adapter(config)
        ref = adapter.reference()
        if (header["ref"] is None) != (ref is None) or (ref is not None and header["ref"] != fingerprint(ref)[:8]):
            raise StreamError("the stream's reference weights (meta-learned initialisation) differ from this "
                              "adapter's: decode with the adapter (and init file) that wrote it")
        with torch.device("meta"):  # names, shapes and storage of the tensors, nothing allocated
            probe = type(adapter)(**config).build_model()
        names = adapter.tensor_names(probe)
        meta = probe.state_dict()
        shapes = {k: tuple(meta[k].shape) for k in names}
        sinr_names = set(adapter.sinr_tensor_names(probe)) if header["sinr"] else set()
        codecs = ["s" if k in sinr_names else adapter.storage(k, meta[k])[0] for k in names]

        # locate every record (lengths checked, nothing decoded)
        r = Reader(data, pos)
        records: list[tuple[str, str, Any]] = []
        for k, c in zip(names, codecs):
            numel = math.prod(shapes[k])
            if c in ("h", "f"):
                records.append((k, c, r.take((2 if c == "h" else 4) * numel, f"tensor {k!r}")))
            elif c == "q":
                records.append((k, c, read_quantizer(r.take(5, f"the quantizer of {k!r}"), k)))
            elif c == "s":
                records.append((k, c, r.section(what=f"the SINR section of {k!r}")))
            else:
                raise StreamError(f"unknown tensor codec {c!r}")
        payload = r.section(what="the integer section")
        if r.pos != len(data):
            raise StreamError(f"{len(data) - r.pos} trailing bytes after the stream")
        pending = [(k, *rec) for k, c, rec in records if c == "q"]
        if not pending and payload:
            raise StreamError("unexpected integer section")
        raw = adapter.decode_integers(payload, [(math.prod(shapes[k]), b) for k, b, _ in pending]) if pending else b""

        # decode (allocations bounded by the network's size, checked by open_stream)
        tensors: dict[str, torch.Tensor] = {}
        off = 0
        for k, c, rec in records:
            if c in ("h", "f"):
                arr = np.frombuffer(rec, dtype="<f2" if c == "h" else "<f4").astype(np.float32)
                tensors[k] = torch.from_numpy(arr).reshape(shapes[k])
            elif c == "q":
                bits, step = rec
                numel = math.prod(shapes[k])
                width = 1 if bits <= 8 else 2
                arr = np.frombuffer(raw, dtype="<u1" if width == 1 else "<u2", count=numel, offset=off)
                off += numel * width
                tensors[k] = from_stored_uniform(arr, bits, step).reshape(shapes[k])
            else:
                tensors[k] = sparse_tensor_from_bytes(rec, shapes[k], name=k)
        if ref is not None:
            tensors = {k: tensors[k] + ref[k].cpu().float() for k in names}
        model = adapter.build_model()
        model.load_state_dict(tensors, strict=True)
        shape = tuple(int(s) for s in header["shape"])
        return Decoded(model=model.to(resolve_device(device)), shape=shape, header=header)

    def decode(self, data: bytes, *, device: str = "cpu") -> np.ndarray:
        """Stream -> signal in [0, 1] (decompress + render)."""
        dec = self.decompress(data, device=device)
        return self.render(dec.model, dec.shape)
