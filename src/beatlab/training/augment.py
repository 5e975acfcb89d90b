"""Beat augmentation on the fly, per batch, so a model cannot memorise the few patients it sees.

Seven perturbations a new recording brings anyway: a different amplitude (electrode placement,
gain), baseline wander (breathing, movement), noise (muscle, electrode) and noise in the band of
electrode motion, an R peak a few samples
off (what a QRS detector gives instead of an annotator's mark), waves a little wider or
narrower (another patient's QRS and QT durations), and R-R intervals read between such
misplaced peaks. All draws come from the
training loop's seeded generator, so a run stays reproducible (and resumable); with every
setting at 0, the default, beats pass through untouched and no random number is drawn.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import Tensor

from beatlab.data.build import Beats
from beatlab.data.layouts import get_layout, r_index
from beatlab.errors import BeatlabError
from beatlab.training.config import AUGMENT_FIELDS, TrainConfig


def is_on(config: TrainConfig) -> bool:
    return any(getattr(config, key) for key in AUGMENT_FIELDS)


def with_needed_medians(config: TrainConfig, train: Beats) -> Beats:
    """The training beats with their records' median beats only where jitter that moves the R
    peak uses them (so no other training copies or slices them each step), refused where it
    needs them and the beats lack them."""
    if not (
        config.augment_jitter
        and config.augment_jitter_at == "peak"
        and get_layout(config.layout).deviation
    ):
        return replace(train, median=None)
    if train.median is None:
        raise BeatlabError(
            "augment_jitter_at 'peak' needs each beat's record median beat, which beats of "
            "several leads and balance 'smote' do not keep: use 'beat', or one lead and "
            "balance 'weights', 'oversample' or sampler 'balanced'"
        )
    return train


def augment(
    x: Tensor, config: TrainConfig, generator: torch.Generator, median: Tensor | None = None
) -> Tensor:
    """A perturbed copy of the (batch, length) beats `x`, per the config's augment_* settings:
    amplitude times U(1 - scale, 1 + scale); a sinusoidal wander of up to `wander` (beat units)
    and up to one cycle per beat; Gaussian noise of s.d. `noise`; a shift of up to `jitter`
    samples either way (edge samples repeated), of the beat with its record's `median` beat
    added back and taken away again where `augment_jitter_at` is "peak" (a deviation layout's beat,
    as a misplaced R peak moves it); the time axis stretched about the R peak of the config's
    layout by U(1 - stretch, 1 + stretch) (linear interpolation, edges repeated); noise in the
    band of electrode motion (`motion_noise`) of RMS U(0, motion)."""
    if not is_on(config):
        return x
    n, length = x.shape

    def uniform(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator)

    if config.augment_jitter:
        shift = torch.randint(
            -config.augment_jitter, config.augment_jitter + 1, (n, 1), generator=generator
        )
        index = (torch.arange(length)[None, :] + shift).clamp(0, length - 1)
        if config.augment_jitter_at == "peak" and median is not None:
            x = torch.gather(x + median, 1, index) - median
        else:
            x = torch.gather(x, 1, index)
    if config.augment_stretch:
        r = r_index(get_layout(config.layout))
        factor = 1 + config.augment_stretch * (2 * uniform(n, 1) - 1)
        at = (r + (torch.arange(length)[None, :] - r) / factor).clamp(0, length - 1)
        low = at.floor().long()
        high, frac = (low + 1).clamp(max=length - 1), at - low
        x = torch.gather(x, 1, low) * (1 - frac) + torch.gather(x, 1, high) * frac
    if config.augment_scale:
        x = x * (1 + config.augment_scale * (2 * uniform(n, 1) - 1))
    if config.augment_wander:
        t = torch.linspace(0, 1, length)[None, :]
        phase, cycles = 2 * math.pi * uniform(n, 1), uniform(n, 1)
        amplitude = config.augment_wander * (2 * uniform(n, 1) - 1)
        x = x + amplitude * torch.sin(2 * math.pi * cycles * t + phase)
    if config.augment_noise:
        x = x + config.augment_noise * torch.randn(x.shape, generator=generator)
    if config.augment_motion:
        band = motion_noise(n, length, get_layout(config.layout).fs, generator)
        x = x + config.augment_motion * uniform(n, 1) * band
    return x


MOTION_HZ = (1.0, 10.0)
"""The band of `augment_motion`'s noise: electrode motion's, as benchmarks/noise.py draws it."""


def motion_noise(n: int, length: int, fs: float, generator: torch.Generator) -> Tensor:
    """(n, length) Gaussian noise band-limited to `MOTION_HZ` at `fs` (its spectrum cut), each
    row scaled to a mean square of 1."""
    spectrum = torch.fft.rfft(torch.randn(n, length, generator=generator), dim=1)
    freq = torch.fft.rfftfreq(length, 1 / fs)
    spectrum[:, (freq < MOTION_HZ[0]) | (freq > MOTION_HZ[1])] = 0
    band = torch.fft.irfft(spectrum, n=length, dim=1)
    return band / band.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-12)


def augment_rr(rr: Tensor, config: TrainConfig, generator: torch.Generator) -> Tensor:
    """A copy of a centred layout's (batch, 3) R-R features as if the beat's R peak and its two
    neighbours' had each moved U(-a, a) of the local R-R (`augment_rr_jitter`): the previous
    interval over the local changes by the beat's move less its predecessor's, the next by the
    successor's less the beat's. The local R-R, a median or mean of ten, stays."""
    if not config.augment_rr_jitter:
        return rr
    before, own, after = config.augment_rr_jitter * (
        2 * torch.rand(3, len(rr), generator=generator) - 1
    )
    moved = rr.clone()
    moved[:, 0] += own - before
    moved[:, 1] += after - own
    return moved
