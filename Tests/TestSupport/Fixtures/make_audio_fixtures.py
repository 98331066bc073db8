#!/usr/bin/env python3
"""Builds the audio front end's fixtures: what examples/valve-leak/frontend.py (the NumPy reference) computes for
about 3 s of deterministic synthetic audio, for IOPAudioTests to compare the Swift front end against.

- audio_frontend.input.npy: int16 samples, 16 kHz mono;
- audio_frontend.patches.npy: float32 [patches][96][64] log-mel patches, frontend.patches(samples).

The audio exercises what a leak microphone hears and what stresses float32: a 100 Hz to 7 kHz chirp (every mel
band), a 50 Hz mains hum, broadband noise, a stretch of digital silence (log-mel at log(0.01), the values most
sensitive to rounding) and a near full-scale 1 kHz burst, clipped to int16.

Regenerate (needs numpy only): python3 Tests/TestSupport/Fixtures/make_audio_fixtures.py
The output is deterministic (seeded); commit the regenerated files.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "examples", "valve-leak"))
import frontend  # noqa: E402


def synthesize(p=frontend.Parameters(), seconds=3.0, seed=20250101):
    rng = np.random.default_rng(seed)
    n = int(seconds * p.sample_rate)
    t = np.arange(n) / p.sample_rate
    f0, f1 = 100.0, 7000.0
    chirp = 0.3 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds)))
    hum = 0.1 * np.sin(2 * np.pi * 50.0 * t)
    noise = 0.02 * rng.standard_normal(n)
    x = chirp + hum + noise
    x[int(1.2 * p.sample_rate):int(1.5 * p.sample_rate)] = 0.0  # digital silence
    burst = slice(int(2.2 * p.sample_rate), int(2.4 * p.sample_rate))
    x[burst] = 1.05 * np.sin(2 * np.pi * 1000.0 * t[burst])  # clips at full scale
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


def main():
    samples = synthesize()
    patches, ends = frontend.patches(samples)
    np.save(os.path.join(HERE, "audio_frontend.input.npy"), samples)
    np.save(os.path.join(HERE, "audio_frontend.patches.npy"), patches)
    print(f"{len(samples)} samples -> {patches.shape} patches ending at {ends.tolist()} s")


if __name__ == "__main__":
    main()
