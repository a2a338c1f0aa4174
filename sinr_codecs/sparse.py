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
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from . import bitstream, quantize
from .dictionary import GENERATOR_ID, atoms, sensing_matrix
from .errors import NonFiniteError
from .layout import Layout, choose_layout
from .limits import get_limits
from .omp import batch_omp
from .options import MIN_VALUE_BITS
from .threads import single_threaded_kernels

__all__ = ["SparseCode", "decode_bytes", "resolve_device", "resolve_sparsity", "resolve_k2"]

_RECON_ELEMENTS = 1 << 24  # gathered dictionary entries per reconstruction chunk (training path)
_DECODE_CHUNK = 1 << 18  # output elements per decode block (2 MiB of float64 work)
_TOL_MARGIN = 0.8  # OMP aims below the bound so that quantization has room
_MAX_REFITS = 12
BOUNDED_MAX_K1 = 64
"""Longest vector of the ``"auto"`` layout in error-bounded mode (longer rows are cut into blocks): meeting a
tight bound takes nearly k1 atoms, and OMP's work per weight grows as k1 squared."""
_SAMPLE_VECTORS = 256
"""Vectors an error-bounded fit codes first, to decide whether the dictionary pays on this tensor."""


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
    stats: dict = field(default_factory=dict, compare=False)

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
    ) -> "SparseCode":
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
            Error-bounded mode: every vector gets the fewest atoms such that
            ``||w - w_hat|| <= max_rel_error * ||w||`` holds *after* ``value_bits`` quantization
            (per-vector steps) and rounding to the tensor's dtype. Raises ValueError if no atom count
            can meet it.
        value_bits : int, default 16
            Used by the error-bounded check only (the stream's bits are chosen in :meth:`to_bytes`).
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
        """
        arr, dtype, order = _as_tensor(tensor)
        cap = get_limits().max_dictionary_entries
        max_k1 = max_k1_for(dictionary_size, dictionary_ratio, cap) if layout == "auto" else None
        if max_k1 is not None and max_rel_error is not None:
            max_k1 = min(max_k1, BOUNDED_MAX_K1)  # a bound needs many atoms: OMP's cost grows as k1**2
        lay = choose_layout(tuple(arr.shape), layout, block_size, max_k1=max_k1)
        dev = resolve_device(device)
        work = torch.float64 if dtype == np.float64 else torch.float32
        vectors = lay.to_vectors(arr.to(work)).to(dev)
        n, k1 = vectors.shape
        base = dict(layout=lay, dtype=dtype, order=order)
        if n == 0 or k1 < 2:
            return cls._dense(vectors, **base)
        k2 = resolve_k2(k1, dictionary_size, dictionary_ratio)
        if k1 * k2 > cap:
            raise ValueError(
                f"a {k1}x{k2} dictionary ({k1 * k2} entries) exceeds max_dictionary_entries = {cap}: use shorter "
                "vectors (layout='blocks' with a smaller block_size), a smaller dictionary, or raise the limit "
                "(sinr_codecs.limits.set_limits); decoders need the same raised limit")
        a = sensing_matrix(k1, k2, seed, device=dev, dtype=work)
        base.update(k2=k2, seed=int(seed))
        # OMP on vectors scaled by a power of two (exact) so that squared norms neither overflow nor
        # underflow whatever the magnitudes; the coefficients are scaled back afterwards
        scale = _power_of_two_scale(vectors)
        scaled = vectors * scale[:, None]
        if max_rel_error is None:
            s = resolve_sparsity(sparsity, k1)
            r = batch_omp(scaled, a, sparsity=s, memory_budget=memory_budget, progress=progress)
            code = cls(indices=r.indices.cpu(), values=r.coefs.cpu(), counts=r.counts.cpu(), **base)
            return code._unscaled(scale)
        code = cls._fit_bounded(vectors, scaled, scale, a, float(max_rel_error), value_bits, base, memory_budget,
                                progress)
        return _dense_rows_if_smaller(code, arr.to(work), float(max_rel_error), value_bits)

    def _unscaled(self, scale: torch.Tensor) -> "SparseCode":
        """The code of the unscaled vectors: values divided by each vector's ``scale``.

        Values stay in their dtype unless that would overflow it (float32 weights near 3e38), then
        float64.
        """
        vals = self.values.to(torch.float64) / scale.to("cpu", torch.float64)[:, None]
        if self.values.dtype != torch.float64 and bool(torch.isfinite(vals.to(self.values.dtype)).all()):
            vals = vals.to(self.values.dtype)
        return replace(self, values=vals)

    @classmethod
    def _dense(cls, vectors: torch.Tensor, **base) -> "SparseCode":
        n, k1 = vectors.shape
        return cls(indices=torch.zeros((n, 0), dtype=torch.int64), values=vectors.cpu(),
                   counts=torch.full((n,), k1, dtype=torch.int64), dense=True, **base)

    @classmethod
    def _fit_bounded(cls, vectors, scaled, scale, a, bound, bits, base, memory_budget, progress) -> "SparseCode":
        """Error-bounded fit that never writes a larger stream than dense mode (no dictionary) would.

        A tensor of at most 2 x :data:`_SAMPLE_VECTORS` vectors is coded both ways and the smaller stream
        kept. A larger one has an evenly spaced sample coded both ways first (``bits``-bit values, the
        default back end); if the dense sample is no larger, the whole tensor is stored densely without
        running OMP on it. This is the usual case for trained weights at a tight bound: OMP then needs
        nearly k1 atoms, whose indices cost more than the values they replace.
        """
        if not 0.0 < bound < 1.0:
            raise ValueError(f"max_rel_error must lie in (0, 1), got {bound}")
        n, k1 = vectors.shape
        dense_base = {k: base[k] for k in ("layout", "dtype", "order")}
        if n <= 2 * _SAMPLE_VECTORS:
            code = cls._fit_bounded_sparse(vectors, scaled, scale, a, bound, bits, base, memory_budget, progress)
            dense = cls._dense(vectors, **dense_base)
            if code.dense or (_meets(dense, vectors, bits, bound) and _size(dense, bits) <= _size(code, bits)):
                return _fewest_bits(dense, vectors, bits, bound)
            return code
        rows = torch.linspace(0, n - 1, _SAMPLE_VECTORS).round().to(torch.int64)
        sub = {**base, "layout": choose_layout((_SAMPLE_VECTORS, k1), "rows")}
        pick = rows.to(vectors.device)
        sample = cls._fit_bounded_sparse(vectors[pick], scaled[pick], scale[pick], a, bound, bits, sub,
                                         memory_budget, None)
        sample_dense = cls._dense(vectors[pick], **{k: sub[k] for k in dense_base})
        if sample.dense or _size(sample_dense, bits) <= _size(sample, bits):
            dense = cls._dense(vectors, **dense_base)
            if _meets(dense, vectors, bits, bound):
                if progress is not None:
                    progress(n, n)
                return _fewest_bits(dense, vectors, bits, bound)
        return cls._fit_bounded_sparse(vectors, scaled, scale, a, bound, bits, base, memory_budget, progress)

    @classmethod
    def _fit_bounded_sparse(cls, vectors, scaled, scale, a, bound, bits, base, memory_budget, progress
                            ) -> "SparseCode":
        """Error-bounded OMP, refitting the vectors that miss the bound after quantization; dense mode when
        fewer than k1 atoms cannot meet it."""
        n, k1 = vectors.shape
        cap = k1 - 1
        r = batch_omp(scaled, a, tol=bound * _TOL_MARGIN, sparsity=cap, memory_budget=memory_budget,
                      progress=progress)
        code = cls(indices=r.indices.cpu(), values=r.coefs.cpu(), counts=r.counts.cpu(), **base)
        tol = bound * _TOL_MARGIN
        for _ in range(_MAX_REFITS):
            code = code._unscaled(scale)
            bad = torch.from_numpy(code._vector_errors(vectors, bits, "vector") > bound)
            if not bad.any():
                return code
            if bool((code.counts[bad] >= cap).all()):
                break  # more atoms are not possible: quantization or rounding is the floor
            tol *= 0.5
            rows = bad.to(scaled.device)
            sub = batch_omp(scaled[rows], a, tol=tol, sparsity=cap, memory_budget=memory_budget)
            code = replace(code, values=code.values * scale.to("cpu", code.values.dtype)[:, None])  # back to scaled
            code = code._replace_rows(bad, sub.indices.cpu(), sub.coefs.cpu(), sub.counts.cpu())
        dense = cls._dense(vectors, **{k: base[k] for k in ("layout", "dtype", "order")})
        worst = float(dense._vector_errors(vectors, bits, "vector").max())
        if worst > bound:
            raise ValueError(
                f"max_rel_error={bound:g} cannot be met with value_bits={bits} and dtype {base['dtype']}: "
                f"even uncompressed vectors quantized to {bits} bits reach a relative error of {worst:.3g}; "
                "raise value_bits or loosen max_rel_error")
        return dense

    def _replace_rows(self, rows: torch.Tensor, idx: torch.Tensor, val: torch.Tensor,
                      cnt: torch.Tensor) -> "SparseCode":
        s = max(self.indices.shape[1], idx.shape[1])
        indices = _pad(self.indices, s, -1)
        values = _pad(self.values, s, 0)
        indices[rows] = _pad(idx, s, -1)
        values[rows] = _pad(val.to(values.dtype), s, 0)
        counts = self.counts.clone()
        counts[rows] = cnt
        return replace(self, indices=indices, values=values, counts=counts)

    def _vector_errors(self, vectors: torch.Tensor, bits: int, granularity: str) -> np.ndarray:
        """Per-vector relative L2 error after quantization and rounding to the output dtype."""
        rec = self.quantized(bits, granularity)._vectors(torch.float64, "cpu").numpy()
        rec = _saturate(rec, self.dtype).astype(self.dtype.newbyteorder("=")).astype(np.float64)
        ref = vectors.detach().to("cpu", torch.float64).numpy()
        unit = np.max(np.abs(ref), axis=1, keepdims=True)  # norms of rescaled rows cannot overflow
        unit = np.where(unit > 0, unit, 1.0)
        err = np.linalg.norm((rec - ref) / unit, axis=1)
        norm = np.linalg.norm(ref / unit, axis=1)
        return np.where(norm > 0, err / np.where(norm > 0, norm, 1), np.where(err > 0, np.inf, 0.0))

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
        n = self.n_vectors
        vals = self.values.detach().to("cpu", torch.float64).numpy()
        if self.dense:
            return _reconstruct(self.layout, self.dtype, self.order, None,
                                lambda i0, i1: (None, None, vals.reshape(n, self.k1)[i0:i1]))
        idx = self.indices.cpu().numpy()
        return _reconstruct(self.layout, self.dtype, self.order, atoms(self.k1, self.k2, self.seed,
                                                                      generator=self.generator),
                            lambda i0, i1: _csr_rows(idx[i0:i1], vals[i0:i1]))

    # ------------------------------------------------------------------------------ quantize
    def _quantize(self, bits: int, granularity: str) -> tuple[np.ndarray, np.ndarray]:
        return quantize.quantize(self.values, bits, granularity)

    def quantized(self, value_bits: int, granularity: str = "tensor") -> "SparseCode":
        """A copy whose values are replaced by their ``value_bits`` uniform-quantized reconstruction."""
        q, steps = self._quantize(value_bits, granularity)
        vals = torch.from_numpy(quantize.dequantize(q, steps)).to(self.values.dtype)
        return replace(self, values=vals)

    # ------------------------------------------------------------------------------- streams
    def to_bytes(self, *, value_bits: int = 16, entropy: str = "brotli", index_coding: str = "delta",
                 granularity: str = "tensor") -> bytes:
        """Quantize the values and write a version-1 stream (docs/format.md).

        Parameters
        ----------
        value_bits : int, default 16
            Uniform quantizer bits for the values (2..24).
        entropy : {"brotli", "raw"}
        index_coding : {"delta", "raw"}
        granularity : {"tensor", "vector"}
            One quantizer step per tensor, or one per vector.
        """
        q, steps = self._quantize(value_bits, granularity)
        c = bitstream.Content(
            dtype=self.dtype, order=self.order, layout=self.layout, mode="dense" if self.dense else "sparse",
            value_bits=value_bits, granularity=granularity, backend=entropy, q=q, steps=steps,
            k2=self.k2, generator=self.generator, seed=self.seed, index_coding=index_coding,
            counts=self.counts.numpy(), indices=self.indices.numpy())
        return bitstream.write(c)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview | np.ndarray) -> "SparseCode":
        """Read a stream written by :meth:`to_bytes` (values come back dequantized, float64).

        Raises
        ------
        StreamError
            If the stream is corrupt, truncated or of an unknown version.
        """
        c = bitstream.read(data).content()
        values = torch.from_numpy(quantize.dequantize(c.q, c.steps))
        n = c.layout.n_vectors
        if c.mode == "dense":
            return cls(layout=c.layout, dtype=c.dtype, order=c.order, dense=True, values=values,
                       indices=torch.zeros((n, 0), dtype=torch.int64),
                       counts=torch.full((n,), c.layout.k1, dtype=torch.int64))
        return cls(layout=c.layout, dtype=c.dtype, order=c.order, k2=c.k2, seed=c.seed, generator=c.generator,
                   indices=torch.from_numpy(c.indices), values=values, counts=torch.from_numpy(c.counts))


def decode_bytes(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """Decode a stream straight to an array, chunk by chunk (what :meth:`SINR.decode` runs).

    Equal to ``SparseCode.from_bytes(data).decode()``, without expanding the whole stream: peak memory
    is the output, the compact stream and one float64 dictionary, plus a bounded work chunk.

    Raises
    ------
    StreamError
        For any stream that is corrupt, truncated, inconsistent or beyond :mod:`sinr_codecs.limits`.
    """
    st = bitstream.read(data)
    at = None
    if st.mode == "sparse" and st.layout.n_vectors:
        at = atoms(st.layout.k1, st.k2, st.seed, generator=st.generator)  # (k2, k1), no transposed copy
    return _reconstruct(st.layout, st.dtype, st.order, at, st.block)


Block = Callable[[int, int], tuple["np.ndarray | None", "np.ndarray | None", np.ndarray]]


def _reconstruct(layout: Layout, dtype: np.dtype, order: str, at: torch.Tensor | None,
                 block: Block) -> np.ndarray:
    """Fill an array of ``layout.shape`` and ``dtype`` vector block by vector block.

    ``block(i0, i1)`` gives vectors ``[i0, i1)`` as a CSR matrix over the atoms (row pointers, ascending
    column indices, float64 values), or ``(None, None, the (c, k1) vectors)`` in dense mode. Each block
    is multiplied by ``at``, the (k2, k1) C-contiguous dictionary transpose (:func:`~sinr_codecs.dictionary.atoms`),
    in float64, saturated to the dtype's finite range and written into the output.
    """
    out = np.empty(layout.shape, dtype=dtype)
    flat = out.reshape(-1)
    n, k1, size = layout.n_vectors, layout.k1, layout.size
    step = max(1, _DECODE_CHUNK // max(1, k1))
    with single_threaded_kernels():  # parallelism comes from decoding chunks concurrently
        for i0 in range(0, n, step):
            i1 = min(n, i0 + step)
            crow, cols, vals = block(i0, i1)
            if crow is None:
                rec = np.ascontiguousarray(vals, dtype=np.float64)
            else:
                rec = _csr_times(crow, cols, vals, at).numpy()
            _saturate(rec, dtype)
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


def _saturate(rec: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Clip float64 ``rec`` in place to ``dtype``'s finite range (NaN, never produced from finite
    input by a valid stream, becomes 0): a finite input never decodes to inf or NaN."""
    fmax = float(np.finfo(dtype).max)
    np.nan_to_num(rec, copy=False, nan=0.0, posinf=fmax, neginf=-fmax)
    return np.clip(rec, -fmax, fmax, out=rec)


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


def _size(code: SparseCode, bits: int) -> int:
    """Bytes of ``code``'s stream with ``bits``-bit values, per-vector steps and the default back end."""
    return len(code.to_bytes(value_bits=bits, granularity="vector"))


def _dense_rows_if_smaller(code: SparseCode, arr: torch.Tensor, bound: float, bits: int) -> SparseCode:
    """A dense ``code`` re-cut into the array's rows (its last axis) when that stream is smaller.

    Without a dictionary the vector length is free: longer vectors share one quantizer step among more
    values, so whole rows usually need fewer value bits and fewer steps than the short blocks OMP needed.
    Every row then meets ``bound``.
    """
    if not code.dense or arr.ndim < 2 or code.layout.kind == "rows" or arr.shape[-1] <= code.k1:
        return code
    lay = choose_layout(tuple(arr.shape), "rows")
    rows = lay.to_vectors(arr)
    dense = SparseCode._dense(rows, layout=lay, dtype=code.dtype, order=code.order)
    if not _meets(dense, rows, bits, bound):
        return code
    dense = _fewest_bits(dense, rows, bits, bound)
    mine = code.stats.get("value_bits", bits)
    return dense if _size(dense, dense.stats["value_bits"]) < _size(code, mine) else code


def _fewest_bits(dense: SparseCode, vectors: torch.Tensor, bits: int, bound: float) -> SparseCode:
    """``dense`` (which meets ``bound`` with ``bits``-bit values) with ``stats["value_bits"]`` set to the
    fewest bits (at least :data:`~sinr_codecs.options.MIN_VALUE_BITS`) that still meet it: values without a
    dictionary need no more."""
    best = bits
    for b in range(bits - 1, MIN_VALUE_BITS - 1, -1):
        if not _meets(dense, vectors, b, bound):
            break
        best = b
    return replace(dense, stats={**dense.stats, "value_bits": best})


def _meets(code: SparseCode, vectors: torch.Tensor, bits: int, bound: float) -> bool:
    """Whether every vector of ``code`` is within ``bound`` of ``vectors`` after ``bits``-bit quantization."""
    return float(code._vector_errors(vectors, bits, "vector").max()) <= bound


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
