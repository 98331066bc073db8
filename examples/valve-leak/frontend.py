"""The valve model's audio front end in NumPy: the reference the board's Swift
front end (Sources/IOPAudio) is tested against, and what the training script
computes its features with.

VGGish-style log-mel patches:
- 16 kHz mono samples, int16 scaled to [-1, 1) by 1/32768;
- frames of 400 samples (25 ms) every 160 samples (10 ms), periodic Hann window;
- magnitude of a 512-point real FFT (257 bins);
- 64 mel bands, 125 to 7500 Hz, HTK mel scale, triangular weights, DC bin zero;
- log(mel + 0.01);
- patches of 96 frames (0.96 s) every 50 frames (0.5 s), frame-major: [96][64].

Frame i covers samples [160 i, 160 i + 400). Patch k covers frames
[50 k, 50 k + 96) and ends at sample 160 (50 k + 95) + 400, its time stamp in
seconds of audio.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Parameters:
    sample_rate: int = 16000
    frame_length: int = 400
    frame_hop: int = 160
    fft_size: int = 512
    mel_bins: int = 64
    f_min: float = 125.0
    f_max: float = 7500.0
    log_offset: float = 0.01
    patch_frames: int = 96
    patch_hop: int = 50

    def patch_end_seconds(self, k):
        """End of patch k, in seconds of audio."""
        return (self.frame_hop * (self.patch_hop * k + self.patch_frames - 1) + self.frame_length) / self.sample_rate


def hann(n):
    """Periodic Hann window."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float64)


def hz_to_mel(f):
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def mel_matrix(p=Parameters()):
    """[fft_size // 2 + 1, mel_bins] triangular weights on the HTK mel scale; the DC bin is zero."""
    bins = p.fft_size // 2 + 1
    bin_mel = hz_to_mel(np.linspace(0, p.sample_rate / 2, bins))
    edges = np.linspace(hz_to_mel(p.f_min), hz_to_mel(p.f_max), p.mel_bins + 2)
    m = np.zeros((bins, p.mel_bins))
    for j in range(p.mel_bins):
        lo, center, hi = edges[j], edges[j + 1], edges[j + 2]
        rising = (bin_mel - lo) / (center - lo)
        falling = (hi - bin_mel) / (hi - center)
        m[:, j] = np.maximum(0.0, np.minimum(rising, falling))
    m[0, :] = 0.0
    return m


def log_mel_frames(samples, p=Parameters()):
    """Every whole frame of int16 `samples` as [frames][mel_bins] log-mel, float64."""
    x = np.asarray(samples, dtype=np.float64) / 32768.0
    n = 0 if len(x) < p.frame_length else 1 + (len(x) - p.frame_length) // p.frame_hop
    if n == 0:
        return np.zeros((0, p.mel_bins))
    idx = np.arange(p.frame_length)[None, :] + p.frame_hop * np.arange(n)[:, None]
    spectrum = np.abs(np.fft.rfft(x[idx] * hann(p.frame_length), n=p.fft_size))
    return np.log(spectrum @ mel_matrix(p) + p.log_offset)


def patches(samples, p=Parameters()):
    """Every whole patch as [patches][patch_frames][mel_bins] float32, with its end time in seconds."""
    frames = log_mel_frames(samples, p)
    count = 0 if len(frames) < p.patch_frames else 1 + (len(frames) - p.patch_frames) // p.patch_hop
    out = np.stack([frames[k * p.patch_hop:k * p.patch_hop + p.patch_frames] for k in range(count)]) if count else \
        np.zeros((0, p.patch_frames, p.mel_bins))
    return out.astype(np.float32), np.array([p.patch_end_seconds(k) for k in range(count)])
