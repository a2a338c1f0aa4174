"""Synthesized test waveforms for audio INRs (mono, 16 kHz by default). Nothing is downloaded.

Each waveform is a deterministic formula of time (no random numbers): notes with harmonics, vibrato,
onsets with an attack and an exponential decay, normalised to a peak of 0.9. :data:`WAVEFORMS` names
them; ``load_waveform(name, samples)`` returns the first ``samples`` samples (``samples / rate`` seconds).

Examples
--------
>>> w = load_waveform("chord", 1600)
>>> w.shape, w.dtype, float(abs(w).max()) <= 0.9 + 1e-6
((1600,), dtype('float32'), True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["RATE", "WAVEFORMS", "load_waveform", "note"]

RATE = 16000
"""Sample rate in Hz."""


def note(t: np.ndarray, freq: float, onset: float, *, decay: float = 2.5, attack: float = 0.01,
         vibrato_hz: float = 5.5, vibrato_depth: float = 0.006, harmonics: Sequence[float] = (1.0, 0.5, 0.25),
         inharmonic: float = 0.0) -> np.ndarray:
    """One note starting at ``onset`` seconds: partials ``k * freq * (1 + inharmonic * k^2)`` with
    amplitudes ``harmonics``, frequency vibrato of relative depth ``vibrato_depth``, a linear attack of
    ``attack`` seconds and an exponential decay of rate ``decay`` per second."""
    tau = np.maximum(t - onset, 0.0)
    env = np.where(t >= onset, np.minimum(tau / attack, 1.0) * np.exp(-decay * tau), 0.0)
    # phase of a frequency f (1 + d sin(2 pi v t)): integral of 2 pi f(t)
    wobble = -vibrato_depth * np.cos(2 * np.pi * vibrato_hz * tau) / (2 * np.pi * vibrato_hz) if vibrato_hz else 0.0
    out = np.zeros_like(t)
    for k, amp in enumerate(harmonics, start=1):
        f = k * freq * (1.0 + inharmonic * k * k)
        out += amp * np.sin(2 * np.pi * f * (tau + wobble))
    return env * out


def _chord(t: np.ndarray) -> np.ndarray:
    # A major: A3, C#4, E4 entering one after another, then A4
    return np.asarray(sum(note(t, f, o) for f, o in ((220.0, 0.0), (277.18, 0.12), (329.63, 0.24), (440.0, 0.5))))


def _arpeggio(t: np.ndarray) -> np.ndarray:
    freqs = (261.63, 329.63, 392.0, 523.25, 392.0, 329.63, 261.63, 196.0)
    return np.asarray(sum(note(t, f, 0.125 * i, decay=6.0, harmonics=(1.0, 0.3, 0.15, 0.08))
                          for i, f in enumerate(freqs)))


def _bell(t: np.ndarray) -> np.ndarray:
    return (note(t, 523.25, 0.0, decay=1.5, vibrato_hz=0.0, attack=0.002, harmonics=(1.0, 0.6, 0.4, 0.25),
                 inharmonic=0.02)
            + note(t, 659.25, 0.4, decay=1.5, vibrato_hz=0.0, attack=0.002, harmonics=(1.0, 0.6, 0.4, 0.25),
                   inharmonic=0.02))


def _bass(t: np.ndarray) -> np.ndarray:
    return np.asarray(sum(note(t, f, o, decay=3.0, vibrato_depth=0.01, harmonics=(1.0, 0.7, 0.5, 0.3, 0.2))
                          for f, o in ((110.0, 0.0), (82.41, 0.25), (98.0, 0.5), (73.42, 0.75))))


WAVEFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "chord": _chord, "arpeggio": _arpeggio, "bell": _bell, "bass": _bass}
"""The bundled waveforms: name -> function of time in seconds."""


def load_waveform(name: str, samples: int = RATE, *, rate: int = RATE) -> np.ndarray:
    """The first ``samples`` samples of waveform ``name`` at ``rate`` Hz, float32 ``(samples,)`` with peak 0.9.

    Raises
    ------
    KeyError
        Unknown name.
    ValueError
        ``samples < 16``.
    """
    if name not in WAVEFORMS:
        raise KeyError(f"unknown waveform {name!r}; bundled waveforms: {', '.join(WAVEFORMS)}")
    if int(samples) < 16:
        raise ValueError("samples must be >= 16")
    t = np.arange(int(samples), dtype=np.float64) / rate
    w = WAVEFORMS[name](t)
    peak = float(np.abs(w).max())
    return (0.9 * w / peak if peak > 0 else w).astype(np.float32)
