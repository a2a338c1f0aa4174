"""The core's one object: a SINR-coded tensor.

:class:`SparseCode` is built by OMP from a tensor (:meth:`SparseCode.fit`), holds each vector's
support (atom indices) and values plus everything needed to rebuild the dictionary, reconstructs the
tensor in torch differentiably with respect to the values (:meth:`SparseCode.reconstruct`, so an
adapter can fine-tune them with the support fixed), and writes itself to / reads itself from the
bitstream (:meth:`SparseCode.to_bytes`, :meth:`SparseCode.from_bytes`). The numcodecs codec, the
Zarr codec, whole-model compression and the INR adapters all write streams through this class.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from . import bitstream, quantize
from .dictionary import GENERATOR_ID, atoms, sensing_matrix
from .errors import NonFiniteError
from .layout import AUTO_BLOCK, AUTO_MAX_FLAT, Layout, choose_layout
from .limits import get_limits
from .omp import batch_omp
from .threads import single_threaded_kernels

__all__ = ["SparseCode", "bound_layout", "decode_bytes", "resolve_device", "resolve_sparsity", "resolve_k2",
           "SAMPLE_VECTORS", "BOUNDED_MAX_K1"]

_RECON_ELEMENTS = 1 << 24  # gathered dictionary entries per reconstruction chunk (training path)
_DECODE_CHUNK = 1 << 18  # output elements per decode block (2 MiB of float64 work)
_TOL_MARGIN = 0.8  # OMP aims below the bound so that quantization has room
_TOL_FLOOR = 0.9  # a vector OMP leaves above this fraction of the bound sends the tensor to dense mode
BOUNDED_MAX_K1 = 64
"""Longest vector OMP codes in error-bounded mode (longer vectors are coded as blocks that divide them):
meeting a tight bound takes nearly k1 atoms, and OMP's work per weight grows as k1 squared."""
SAMPLE_VECTORS = 256
"""Vectors an error-bounded fit codes both ways first, to decide whether the dictionary pays on a tensor."""


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when torch sees one, else CPU; anything else as torch reads it."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA device; use 'auto' or 'cpu'")
    return dev


def resolve_sparsity(sparsity: int | float, k1: int) -> int:
    """Atoms per vector for vectors of length ``k1``: an int, or a fraction of k1 in (0, 1).

    The result is clipped to [1, k1 - 1] (OMP cannot use k1 or more atoms of a k1-dim space).
    """
    if isinstance(sparsity, bool):
        raise ValueError(f"sparsity must be an int >= 1 or a float in (0, 1), got {sparsity!r}")
    if isinstance(sparsity, (int, np.integer)):
        if sparsity < 1:
            raise ValueError(f"sparsity must be >= 1 atom, got {sparsity}")
        s = int(sparsity)
    elif isinstance(sparsity, (float, np.floating)):
        if not 0.0 < sparsity < 1.0:
            raise ValueError(f"a fractional sparsity must lie in (0, 1), got {sparsity}")
        s = max(1, int(round(float(sparsity) * k1)))
    else:
        raise ValueError(f"sparsity must be an int >= 1 or a float in (0, 1), got {sparsity!r}")
    return max(1, min(s, k1 - 1))


def resolve_k2(k1: int, dictionary_size: int | None, dictionary_ratio: float) -> int:
    """Dictionary size: ``dictionary_size`` if given, else ``ceil(dictionary_ratio * k1)`` (>= k1 + 1)."""
    if dictionary_size is not None:
        return max(int(dictionary_size), 2)
    return max(int(math.ceil(dictionary_ratio * k1)), k1 + 1, 2)


@dataclass
class SparseCode:
    """A tensor coded as sparse combinations of a seeded dictionary's atoms.

    Attributes
    ----------
    layout : Layout
        Original shape and how it is cut into ``n_vectors`` vectors of length ``k1``.
    dtype : numpy.dtype
        The original dtype (byte order included); :meth:`decode` returns it.
    order : str
        "C" or "F", the memory order :meth:`decode` returns.
    k2, seed, generator : int
        The dictionary ``sensing_matrix(k1, k2, seed, generator=generator)``.
    indices : torch.Tensor
        (n_vectors, s_max) int64 atom indices, -1 where unused.
    values : torch.Tensor
        (n_vectors, s_max) float coefficients, 0 where unused. In dense mode (``dense=True``, used
        when ``k1 < 2``, and in error-bounded mode when it gives the smaller stream) the (n_vectors, k1)
        vectors themselves, and ``indices`` is (n_vectors, 0).
    counts : torch.Tensor
        (n_vectors,) int64 atoms used per vector.
    dense : bool
        Dense mode: no dictionary, values are the vectors.
    step_codes : numpy.ndarray, optional
        (n_vectors,) int64 quantizer step codes (:func:`sinr_codecs.quantize.step_from_code`) chosen by an
        error-bounded fit: each vector's largest step that keeps it within the bound. :meth:`to_bytes`
        quantizes with them when given (and ``value_bits`` then plays no part).
    """

    layout: Layout
    dtype: np.dtype
    indices: torch.Tensor
    values: torch.Tensor
    counts: torch.Tensor
    k2: int = 0
    seed: int = 0
    generator: int = GENERATOR_ID
    order: str = "C"
    dense: bool = False
    step_codes: np.ndarray | None = field(default=None, compare=False)
    stats: dict[str, Any] = field(default_factory=dict, compare=False)

    # ------------------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.layout.shape

    @property
    def k1(self) -> int:
        return self.layout.k1

    @property
    def n_vectors(self) -> int:
        return self.layout.n_vectors

    def dictionary(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The (k1, k2) dictionary this code refers to."""
        return sensing_matrix(self.k1, self.k2, self.seed, generator=self.generator, device=device, dtype=dtype)

    # ------------------------------------------------------------------------------------ fit
    @classmethod
    def fit(
        cls,
        tensor: torch.Tensor | np.ndarray,
        *,
        sparsity: int | float = 0.25,
        dictionary_ratio: float = 8.0,
        dictionary_size: int | None = None,
        seed: int = 0,
        layout: str = "auto",
        block_size: int | None = None,
        max_rel_error: float | None = None,
        value_bits: int = 16,
        device: str | torch.device = "auto",
        memory_budget: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> SparseCode:
        """Code ``tensor`` by batched OMP.

        Parameters
        ----------
        tensor : torch.Tensor or numpy.ndarray
            Any shape, floating dtype (float16/32/64 or bfloat16), all values finite.
        sparsity : int or float, default 0.25
            Atoms per vector (int >= 1) or a fraction of k1 (float in (0, 1)); clipped to k1 - 1.
            In error-bounded mode, unused.
        dictionary_ratio : float, default 8.0
            k2 / k1 when ``dictionary_size`` is None.
        dictionary_size : int, optional
            k2, the number of atoms.
        seed : int, default 0
            Dictionary seed, 0 <= seed < 2**64.
        layout, block_size
            Vector layout, see :mod:`sinr_codecs.layout`.
        max_rel_error : float, optional
            Error-bounded mode: every vector of the layout (``"auto"``: see :func:`bound_layout`) ends up
            within ``||w - w_hat|| <= max_rel_error * ||w||`` *after* quantization with its own largest
            step (:attr:`step_codes`) and rounding to the tensor's dtype. The tensor is stored densely
            (quantized, no dictionary) unless the sparse code is smaller: decided on an evenly spaced
            sample of :data:`SAMPLE_VECTORS` vectors for larger tensors.
        value_bits : int, default 16
            Fixed-sparsity mode: not used here (:meth:`to_bytes` takes the bits); error-bounded mode: not
            used (steps come from the bound).
        device : str, default "auto"
            Where OMP runs; "auto" = CUDA when available.
        memory_budget : int, optional
            Bytes OMP may use per chunk (see :func:`~sinr_codecs.omp.batch_omp`).
        progress : callable(done, total), optional
            Called after each OMP chunk.

        Raises
        ------
        TypeError
            Non-floating input.
        NonFiniteError
            NaN or infinite input values.
        ValueError
            A bad option, a dictionary over the limit, or a bound that no quantizer step can meet (only
            where the dtype's own rounding is coarser than the bound).
        """
        arr, dtype, order = _as_tensor(tensor)
        dev = resolve_device(device)
        if max_rel_error is not None:
            return cls._fit_bounded(arr, dtype, order, float(max_rel_error), layout=layout, block_size=block_size,
                                    dictionary_ratio=dictionary_ratio, dictionary_size=dictionary_size, seed=seed,
                                    device=dev, memory_budget=memory_budget, progress=progress)
        cap = get_limits().max_dictionary_entries
        max_k1 = max_k1_for(dictionary_size, dictionary_ratio, cap) if layout == "auto" else None
        lay = choose_layout(tuple(arr.shape), layout, block_size, max_k1=max_k1)
        work = torch.float64 if dtype == np.float64 else torch.float32
        vectors = lay.to_vectors(arr.to(work)).to(dev)
        n, k1 = vectors.shape
        base: dict[str, Any] = dict(layout=lay, dtype=dtype, order=order)
        if n == 0 or k1 < 2:
            return cls._dense(vectors, **base)
        k2 = resolve_k2(k1, dictionary_size, dictionary_ratio)
        a = _dictionary(k1, k2, seed, dev, work)
        base.update(k2=k2, seed=int(seed))
        # OMP on vectors scaled by a power of two (exact) so that squared norms neither overflow nor
        # underflow whatever the magnitudes; the coefficients are scaled back afterwards
        scale = _power_of_two_scale(vectors)
        s = resolve_sparsity(sparsity, k1)
        r = batch_omp(vectors * scale[:, None], a, sparsity=s, memory_budget=memory_budget, progress=progress)
        code = cls(indices=r.indices.cpu(), values=r.coefs.cpu(), counts=r.counts.cpu(), **base)
        return code._unscaled(scale)

    def _unscaled(self, scale: torch.Tensor) -> SparseCode:
        """The code of the unscaled vectors: values divided by each vector's ``scale``.

        Values stay in their dtype unless that would overflow it (float32 weights near 3e38), then
        float64; a coefficient beyond float64's range (vectors near 1.8e308) is saturated to it.
        """
        vals = self.values.to(torch.float64) / scale.to("cpu", torch.float64)[:, None]
        top = float(np.finfo(np.float64).max)
        vals = torch.nan_to_num(vals, nan=0.0, posinf=top, neginf=-top)
        if self.values.dtype != torch.float64 and bool(torch.isfinite(vals.to(self.values.dtype)).all()):
            vals = vals.to(self.values.dtype)
        return replace(self, values=vals)

    @classmethod
    def _dense(cls, vectors: torch.Tensor, **base: Any) -> SparseCode:
        n, k1 = vectors.shape
        return cls(indices=torch.zeros((n, 0), dtype=torch.int64), values=vectors.cpu(),
                   counts=torch.full((n,), k1, dtype=torch.int64), dense=True, **base)

    @classmethod
    def _fit_bounded(cls, arr: torch.Tensor, dtype: np.dtype, order: str, bound: float, *, layout: str,
                     block_size: int | None, dictionary_ratio: float, dictionary_size: int | None, seed: int,
                     device: torch.device, memory_budget: int | None,
                     progress: Callable[[int, int], None] | None) -> SparseCode:
        """Error-bounded fit that never writes a larger stream than dense mode (no dictionary) would.

        The bound holds for the vectors of :func:`bound_layout`. The sparse candidate codes the same
        vectors, or (vectors longer than :data:`BOUNDED_MAX_K1`) blocks that divide them: a bound
        met by every block of a row is met by the row. A tensor of at most twice the sample is coded both ways
        and the smaller stream kept; a larger one has an evenly spaced sample of bound vectors (holding about
        :data:`SAMPLE_VECTORS` OMP vectors, at least 16 bound vectors) coded both ways first, and is stored
        densely without OMP when the dense sample is no larger (the
        usual case for trained weights at a tight bound: OMP then needs nearly k1 atoms, whose indices cost
        more than the values they replace).
        """
        if not 0.0 < bound < 1.0:
            raise ValueError(f"max_rel_error must lie in (0, 1), got {bound}")
        lay = bound_layout(tuple(arr.shape), layout, block_size)
        ref = lay.to_vectors(arr.to("cpu", torch.float64)).numpy()
        n, k = ref.shape
        dense = cls._dense_bounded(ref, bound, lay, dtype, order)
        omp = _omp_layout(lay, layout, dictionary_size, dictionary_ratio)
        if omp is None or n == 0:
            if progress is not None:
                progress(n, n)
            return dense
        per = omp.n_vectors // n  # OMP vectors per bound vector
        k2 = resolve_k2(omp.k1, dictionary_size, dictionary_ratio)
        work = torch.float64 if dtype == np.float64 else torch.float32
        a = _dictionary(omp.k1, k2, seed, device, work)
        base: dict[str, Any] = dict(dtype=dtype, order=order, k2=k2, seed=int(seed))
        sample = max(SAMPLE_VECTORS // per, 16)  # bound vectors whose OMP vectors make up the sample
        if n > 2 * sample:
            rows = np.unique(np.linspace(0, n - 1, sample).round().astype(np.int64))
            sub = ref[rows]
            sample_lay = choose_layout((rows.size, k), "rows")
            sample_dense = cls._dense_bounded(sub, bound, sample_lay, dtype, order)
            sample_omp = choose_layout((rows.size * per, omp.k1), "rows")
            sample = cls._sparse_bounded(sub.reshape(-1, omp.k1), bound, a, sample_omp, base, device, memory_budget,
                                         None)
            if sample is None or _size(sample_dense) <= _size(sample):
                if progress is not None:
                    progress(n, n)
                return dense
        blocks = ref.reshape(-1, omp.k1)[: omp.n_vectors]  # beyond: the zero padding of the last vector
        code = cls._sparse_bounded(blocks, bound, a, omp, base, device, memory_budget, progress)
        if code is None or _size(dense) <= _size(code):
            return dense
        return code

    @classmethod
    def _dense_bounded(cls, ref: np.ndarray, bound: float, lay: Layout, dtype: np.dtype, order: str) -> SparseCode:
        """Dense code of the (n, k) float64 vectors ``ref`` with each vector's largest step within ``bound``."""
        codes, _ = quantize.bounded_dense(ref, bound, dtype)
        code = cls._dense(torch.from_numpy(ref), layout=lay, dtype=dtype, order=order)
        return replace(code, step_codes=codes)

    @classmethod
    def _sparse_bounded(cls, ref: np.ndarray, bound: float, a: torch.Tensor, lay: Layout, base: dict[str, Any],
                        device: torch.device, memory_budget: int | None,
                        progress: Callable[[int, int], None] | None) -> SparseCode | None:
        """OMP to :data:`_TOL_MARGIN` of ``bound``, then each vector's largest step within ``bound``; None
        when some vector needs all k1 atoms (the dense code is then the only one that meets the bound)."""
        work = a.dtype
        vectors = torch.from_numpy(ref).to(device=device, dtype=work)
        n, k1 = vectors.shape
        scale = _power_of_two_scale(vectors)
        r = batch_omp(vectors * scale[:, None], a, tol=bound * _TOL_MARGIN, sparsity=k1 - 1,
                      memory_budget=memory_budget, progress=progress)
        code = cls(layout=lay, indices=r.indices.cpu(), values=r.coefs.cpu(), counts=r.counts.cpu(),
                   **base)._unscaled(scale)
        exact = code._relative_errors(ref, code.values)
        if np.any(exact > bound * _TOL_FLOOR):
            return None
        values = code.values.to(torch.float64).numpy()
        live = np.flatnonzero(np.abs(values).max(axis=1, initial=0.0) > 0)
        codes = np.zeros(n, dtype=np.int64)
        if live.size:
            amax = np.abs(values[live]).max(axis=1)
            room = np.sqrt(np.maximum(bound**2 - exact[live] ** 2, (bound * 0.1) ** 2))
            norms = quantize.norms(ref[live])
            counts = np.maximum(code.counts.numpy()[live], 1)
            guess = np.maximum(room * norms * np.sqrt(12.0 / counts), amax * 2.0**-40)

            def errors(c: np.ndarray, rows: np.ndarray) -> np.ndarray:
                step = quantize.step_from_code(c)[:, None]
                sub = live[rows]
                with np.errstate(over="ignore", invalid="ignore"):
                    q = np.rint(values[sub] / step) * step
                return code._relative_errors(ref[sub], torch.from_numpy(q), sub) / bound

            codes[live] = quantize.largest_steps(errors, guess)
        return replace(code, step_codes=codes)

    def _relative_errors(self, ref: np.ndarray, values: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """Per-vector relative error against the (m, k1) float64 ``ref`` of the vectors ``rows`` (all when
        None) reconstructed from ``values`` (their (m, s) coefficients) as a decoder does: in float64,
        saturated and rounded to the dtype."""
        idx = self.indices.numpy() if rows is None else self.indices.numpy()[rows]
        crow, cols, vals = _csr_rows(idx, values.detach().to("cpu", torch.float64).numpy())
        rec = _csr_times(crow, cols, vals, atoms(self.k1, self.k2, self.seed, generator=self.generator)).numpy()
        rec = quantize.saturate(rec, self.dtype)
        if np.dtype(self.dtype).newbyteorder("=") != np.float64:
            rec = rec.astype(self.dtype.newbyteorder("=")).astype(np.float64)
        return quantize.relative_errors(ref, rec)

    # ---------------------------------------------------------------------------- reconstruct
    def _vectors(self, dtype: torch.dtype, device: str | torch.device, values: torch.Tensor | None = None
                 ) -> torch.Tensor:
        vals = self.values if values is None else values
        vals = vals.to(device=device, dtype=dtype)
        n = self.n_vectors
        if self.dense:
            return vals.reshape(n, self.k1)
        s = self.indices.shape[1]
        if n == 0 or s == 0:
            return vals.new_zeros((n, self.k1))
        if torch.device(device).type == "cpu" and dtype == torch.float64:
            at = atoms(self.k1, self.k2, self.seed, generator=self.generator)  # (k2, k1), no transposed copy
        else:
            at = self.dictionary(device, dtype).T  # (k2, k1)
        idx = self.indices.to(device).clamp_min(0)
        vals = vals * (self.indices >= 0).to(device=device, dtype=dtype)
        step = max(1, _RECON_ELEMENTS // max(1, s * self.k1))
        parts = [torch.einsum("ns,nsk->nk", vals[i : i + step], at[idx[i : i + step]]) for i in range(0, n, step)]
        return torch.cat(parts)

    def reconstruct(self, values: torch.Tensor | None = None, *, dtype: torch.dtype = torch.float32,
                    device: str | torch.device | None = None) -> torch.Tensor:
        """The dense tensor (original shape) ``A x`` per vector; differentiable w.r.t. ``values``.

        Parameters
        ----------
        values : torch.Tensor, optional
            (n_vectors, s_max) replacement values (e.g. an ``nn.Parameter`` being fine-tuned); defaults
            to ``self.values``. The support stays fixed.
        dtype : torch.dtype, default float32
        device : optional
            Defaults to the values' device.
        """
        v = self.values if values is None else values
        dev = v.device if device is None else torch.device(device)
        return self.layout.from_vectors(self._vectors(dtype, dev, v))

    def decode(self) -> np.ndarray:
        """The reconstruction as a numpy array of the original dtype, byte order and memory order.

        Computed in float64 on the CPU, so it is the same wherever the stream was encoded; values beyond
        the dtype's finite range are saturated to it (a finite input never decodes to inf or NaN).
        """
        n, k1 = self.n_vectors, self.k1
        vals = self.values.detach().to("cpu", torch.float64).numpy()
        step = max(1, _DECODE_CHUNK // max(1, k1))
        if self.dense:
            blocks: Iterator[bitstream.Block] = (
                (i, min(n, i + step), None, None, vals.reshape(n, k1)[i:min(n, i + step)]) for i in range(0, n, step))
            return _reconstruct(self.layout, self.dtype, self.order, None, blocks)
        idx = self.indices.cpu().numpy()
        blocks = ((i, min(n, i + step), *_csr_rows(idx[i:i + step], vals[i:i + step])) for i in range(0, n, step))
        return _reconstruct(self.layout, self.dtype, self.order,
                            atoms(self.k1, self.k2, self.seed, generator=self.generator), blocks)

    # ------------------------------------------------------------------------------ quantize
    def _quantize(self, bits: int, granularity: str) -> tuple[np.ndarray, np.ndarray]:
        if granularity == "codes":
            if self.step_codes is None:
                raise ValueError("granularity 'codes' needs the step codes of an error-bounded fit")
            step = quantize.step_from_code(self.step_codes)[:, None]
            with np.errstate(over="ignore", invalid="ignore"):
                q = np.rint(self.values.detach().to("cpu", torch.float64).numpy() / step)
            return q.astype(np.int64), self.step_codes
        return quantize.quantize(self.values, bits, granularity)

    def quantized(self, value_bits: int = 16, granularity: str = "tensor") -> SparseCode:
        """A copy whose values are replaced by their quantized reconstruction: with the fit's
        :attr:`step_codes` when it has them, else ``value_bits`` over each ``granularity`` scope."""
        gran = "codes" if self.step_codes is not None else granularity
        q, steps = self._quantize(value_bits, gran)
        scale = quantize.step_from_code(steps) if gran == "codes" else steps
        vals = torch.from_numpy(quantize.dequantize(q, scale)).to(self.values.dtype)
        return replace(self, values=vals)

    # ------------------------------------------------------------------------------- streams
    def to_bytes(self, *, value_bits: int = 16, entropy: str = "auto", index_coding: str = "delta",
                 granularity: str = "tensor") -> bytes:
        """Quantize the values and write a version-1 stream (docs/format.md).

        A code with :attr:`step_codes` (an error-bounded fit) is quantized with them, whatever
        ``value_bits`` and ``granularity`` say: each vector with its own step, the integers as wide as
        they need to be (granularity ``"codes"``).

        Parameters
        ----------
        value_bits : int, default 16
            Uniform quantizer bits for the values (2..24) of a code without step codes.
        entropy : {"auto", "pcodec", "rans", "brotli", "raw"}
            ``"auto"``: see :data:`sinr_codecs.entropy.AUTO`.
        index_coding : {"delta", "raw"}
        granularity : {"tensor", "vector"}
            One quantizer step per tensor, or one per vector (codes without step codes).
        """
        if self.step_codes is not None:
            granularity = "codes"
        q, steps = self._quantize(value_bits, granularity)
        if granularity == "codes":
            value_bits = quantize.bits_for(int(np.abs(q).max()) if q.size else 0)
        c = bitstream.Content(
            dtype=self.dtype, order=self.order, layout=self.layout, mode="dense" if self.dense else "sparse",
            value_bits=value_bits, granularity=granularity, backend=entropy, q=q, steps=steps,
            k2=self.k2, generator=self.generator, seed=self.seed, index_coding=index_coding,
            counts=self.counts.numpy(), indices=self.indices.numpy())
        return bitstream.write(c)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview | np.ndarray) -> SparseCode:
        """Read a stream written by :meth:`to_bytes` (values come back dequantized, float64).

        Raises
        ------
        StreamError
            If the stream is corrupt, truncated or of an unknown version.
        """
        c = bitstream.read(data).content()
        step = c.step_values()
        values = torch.from_numpy(bitstream._times(c.q, step if step.shape == (1,) else step[:, None]))
        codes = np.asarray(c.steps, dtype=np.int64) if c.granularity == "codes" else None
        n = c.layout.n_vectors
        if c.mode == "dense":
            return cls(layout=c.layout, dtype=c.dtype, order=c.order, dense=True, values=values,
                       indices=torch.zeros((n, 0), dtype=torch.int64),
                       counts=torch.full((n,), c.layout.k1, dtype=torch.int64), step_codes=codes)
        return cls(layout=c.layout, dtype=c.dtype, order=c.order, k2=c.k2, seed=c.seed, generator=c.generator,
                   indices=torch.from_numpy(c.indices), values=values, counts=torch.from_numpy(c.counts),
                   step_codes=codes)


def decode_bytes(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """Decode a stream straight to an array, block by block (what :meth:`SINR.decode` runs).

    Equal to ``SparseCode.from_bytes(data).decode()``, without expanding the stream: peak memory is the
    output, the coded stream and one float64 dictionary, plus a bounded work block.

    Raises
    ------
    StreamError
        For any stream that is corrupt, truncated, inconsistent or beyond :mod:`sinr_codecs.limits`.
    """
    st = bitstream.read(data)
    at = None
    if st.mode == "sparse" and st.layout.n_vectors:
        at = atoms(st.layout.k1, st.k2, st.seed, generator=st.generator)  # (k2, k1), no transposed copy
    return _reconstruct(st.layout, st.dtype, st.order, at, st.blocks(max(1, _DECODE_CHUNK // max(1, st.layout.k1))))


def _reconstruct(layout: Layout, dtype: np.dtype, order: str, at: torch.Tensor | None,
                 blocks: Iterable[bitstream.Block]) -> np.ndarray:
    """Fill an array of ``layout.shape`` and ``dtype`` from consecutive vector blocks.

    Each block (:data:`sinr_codecs.bitstream.Block`) is a CSR matrix over the atoms (row pointers,
    ascending column indices, float64 values), or the (c, k1) vectors themselves in dense mode. A sparse
    block is multiplied by ``at``, the (k2, k1) C-contiguous dictionary transpose
    (:func:`~sinr_codecs.dictionary.atoms`), in float64; every block is saturated to the dtype's finite
    range and written into the output.
    """
    out = np.empty(layout.shape, dtype=dtype)
    flat = out.reshape(-1)
    k1, size = layout.k1, layout.size
    with single_threaded_kernels():  # parallelism comes from decoding chunks concurrently
        for i0, i1, crow, cols, vals in blocks:
            if crow is None:
                rec = np.ascontiguousarray(vals, dtype=np.float64)
            else:
                assert at is not None and cols is not None
                rec = _csr_times(crow, cols, vals, at).numpy()
            quantize.saturate(rec, dtype)
            lo, hi = i0 * k1, min(i1 * k1, size)
            flat[lo:hi] = rec.reshape(-1)[: hi - lo]
    if order == "F":
        return np.asfortranarray(out)
    return out


def _csr_times(crow: np.ndarray, cols: np.ndarray, vals: np.ndarray, at: torch.Tensor) -> torch.Tensor:
    """(c, k1) float64 product of a (c, k2) CSR matrix with the (k2, k1) matrix ``at``.

    A sparse product, unless the vectors are long and use many atoms each (:func:`_dense_pays`): then
    the coefficients are scattered into dense rows and multiplied by BLAS, pieces of at most
    :data:`_DENSE_PIECE` coefficients at a time.
    """
    c, (k2, k1) = crow.shape[0] - 1, at.shape
    if cols.size == 0:
        return torch.zeros((c, k1), dtype=torch.float64)
    if _dense_pays(cols.size, c):
        out = torch.empty((c, k1), dtype=torch.float64)
        rows = max(1, _DENSE_PIECE // k2)
        for r0 in range(0, c, rows):
            r1 = min(c, r0 + rows)
            lo, hi = int(crow[r0]), int(crow[r1])
            coef = torch.zeros((r1 - r0, k2), dtype=torch.float64)
            which = np.repeat(np.arange(r1 - r0), np.diff(crow[r0:r1 + 1]))
            coef[torch.from_numpy(which), torch.from_numpy(cols[lo:hi])] = torch.from_numpy(vals[lo:hi])
            torch.mm(coef, at, out=out[r0:r1])
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        m = torch.sparse_csr_tensor(torch.from_numpy(crow), torch.from_numpy(cols), torch.from_numpy(vals),
                                    size=(c, k2), check_invariants=False)
        return m @ at


_DENSE_MIN_ATOMS = 256
_DENSE_PIECE = 1 << 22  # dense coefficients per piece (32 MiB of float64)


def _dense_pays(nnz: int, c: int) -> bool:
    """Whether a dense product beats the sparse one for ``nnz`` atoms over ``c`` vectors: from
    :data:`_DENSE_MIN_ATOMS` atoms per vector on.

    The sparse product's cost per atom grows with the atoms per vector (each output row gathers that
    many dictionary rows), a dense one's does not. Measured on a 2-core AMD EPYC CPU, one thread,
    float64, per 2**18 output values: at 128 atoms per vector the sparse product was 1.0-2.4x faster
    (k1 = 512-1024, k2 = 4-8 k1); at 256 it was 1.0-2.4x slower; at 512, 1.6-8x slower; at 1024 atoms
    (k1 = 1024, k2 = 8192), 1507 ms against 172 ms.
    """
    return nnz >= _DENSE_MIN_ATOMS * c


def _csr_rows(idx: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded (c, s) indices (-1 where unused) and values as CSR pieces with ascending columns."""
    c, s = idx.shape
    order = np.argsort(np.where(idx < 0, np.iinfo(np.int64).max, idx), axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    used = idx >= 0
    crow = np.zeros(c + 1, dtype=np.int64)
    np.cumsum(used.sum(axis=1), out=crow[1:])
    return crow, idx[used], np.ascontiguousarray(vals[used], dtype=np.float64)


def _power_of_two_scale(vectors: torch.Tensor) -> torch.Tensor:
    """(n,) powers of two that bring each vector's largest magnitude into [0.5, 1) (1 for zero vectors)."""
    amax = vectors.abs().amax(dim=1).to(torch.float64)
    _, exponent = torch.frexp(torch.where(amax > 0, amax, torch.ones_like(amax)))
    limit = (100 if vectors.dtype == torch.float32 else 1000)  # the scale itself stays a normal number
    return torch.ldexp(torch.ones_like(amax), (-exponent).clamp(-limit, limit)).to(vectors.dtype)


def max_k1_for(dictionary_size: int | None, dictionary_ratio: float, max_entries: int) -> int:
    """Longest vector whose dictionary (``k1 * k2`` entries, :func:`resolve_k2`) fits ``max_entries``."""
    if dictionary_size is not None:
        return max(1, max_entries // max(int(dictionary_size), 2))
    k1 = max(1, math.isqrt(int(max_entries / dictionary_ratio)))
    while k1 > 1 and k1 * resolve_k2(k1, None, dictionary_ratio) > max_entries:
        k1 -= 1
    return k1


def _size(code: SparseCode) -> int:
    """Bytes of an error-bounded ``code``'s stream with the default back end."""
    return len(code.to_bytes())


def _dictionary_fits(k1: int, k2: int) -> None:
    """ValueError when a (k1, k2) dictionary exceeds ``max_dictionary_entries``, saying what to change."""
    cap = get_limits().max_dictionary_entries
    if k1 * k2 > cap:
        raise ValueError(
            f"a {k1}x{k2} dictionary ({k1 * k2} entries) exceeds max_dictionary_entries = {cap}: use shorter "
            "vectors (layout='blocks' with a smaller block_size), a smaller dictionary, or raise the limit "
            "(sinr_codecs.limits.set_limits); decoders need the same raised limit")


def _dictionary(k1: int, k2: int, seed: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The (k1, k2) dictionary, after checking it against ``max_dictionary_entries``."""
    _dictionary_fits(k1, k2)
    return sensing_matrix(k1, k2, seed, device=device, dtype=dtype)


def bound_layout(shape: tuple[int, ...], layout: str = "auto", block_size: int | None = None) -> Layout:
    """The vectors an error bound holds for: the layout asked for, or for ``"auto"``: each row (the last
    axis) of an array of 2 or more dimensions, whatever its length; a 1-D (or 0-d) array whole up to
    :data:`~sinr_codecs.layout.AUTO_MAX_FLAT` values, else blocks of :data:`~sinr_codecs.layout.AUTO_BLOCK`.

    Examples
    --------
    >>> bound_layout((256, 1152)).kind, bound_layout((64, 3)).k1, bound_layout((100,)).kind
    ('rows', 3, 'flat')
    """
    shape = tuple(int(d) for d in shape)
    if layout != "auto":
        return choose_layout(shape, layout, block_size)
    if len(shape) >= 2:
        return choose_layout(shape, "rows")
    if math.prod(shape) <= AUTO_MAX_FLAT:
        return choose_layout(shape, "flat")
    return choose_layout(shape, "blocks", AUTO_BLOCK)


def _omp_layout(lay: Layout, layout: str, dictionary_size: int | None, dictionary_ratio: float) -> Layout | None:
    """The vectors OMP codes for the bound vectors ``lay``: the same ones, or for vectors longer than
    :data:`BOUNDED_MAX_K1` blocks of 8 to 64 values that divide them (a bound every block meets, their vector
    meets); None when there are none (the tensor is then stored densely).

    Raises
    ------
    ValueError
        An explicit ``dictionary_size`` whose dictionary exceeds ``max_dictionary_entries``.
    """
    k = lay.k1
    if lay.size == 0:
        return None
    if k > BOUNDED_MAX_K1:
        fits = [d for d in range(BOUNDED_MAX_K1, 7, -1) if k % d == 0]
        if not fits:
            return None
        k = fits[0]
    if k < 2:
        return None
    k2 = resolve_k2(k, dictionary_size, dictionary_ratio)
    if k * k2 > get_limits().max_dictionary_entries:
        if dictionary_size is None:
            return None  # the dictionary a long vector would need: the dense code is the only candidate
        _dictionary_fits(k, k2)  # an explicit dictionary_size that cannot be honoured: say so
    return lay if k == lay.k1 else Layout("blocks", lay.shape, k)


def _pad(t: torch.Tensor, s: int, fill: float) -> torch.Tensor:
    if t.shape[1] == s:
        return t.clone()
    out = torch.full((t.shape[0], s), fill, dtype=t.dtype)
    out[:, : t.shape[1]] = t
    return out


def _as_tensor(x: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, np.dtype, str]:
    """Validate input and return (native-order CPU/GPU tensor, numpy dtype with byte order, memory order)."""
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise TypeError(f"SINR codes floating-point tensors only, got {x.dtype}")
        t = x.detach()
        if t.dtype == torch.bfloat16:
            dtype = np.dtype("float32")
            t = t.float()
        else:
            dtype = np.dtype(str(t.dtype).removeprefix("torch."))
        order = "C"
    else:
        a = np.asarray(x)
        if a.dtype.kind != "f" or a.dtype.itemsize not in (2, 4, 8):
            raise TypeError(f"SINR codes float16/32/64 arrays only, got dtype {a.dtype}")
        dtype = a.dtype
        order = "F" if a.ndim > 1 and a.flags.f_contiguous and not a.flags.c_contiguous else "C"
        native = a.astype(a.dtype.newbyteorder("="), order="C", copy=True)  # owns, writable, keeps 0-d
        t = torch.from_numpy(native)
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        first = tuple(int(i) for i in torch.nonzero(~finite)[0].tolist())
        raise NonFiniteError(
            f"input holds {bad} non-finite value(s) (NaN or inf; first at index {first}); SINR refuses "
            "them: replace them, or store this tensor with a lossless codec")
    return t, dtype, order
