#!/usr/bin/env python3
"""Deterministic synthesiser of valve sound in a factory, with and without leaks.

A stand-in for the MIMII valve recordings (Purohit et al., Hitachi 2019: 16 kHz
microphones near solenoid valves, factory noise mixed in at -6, 0 and +6 dB
SNR), so the leak detector can be trained and tested without the dataset.
Everything is drawn from one integer seed; the same seed always gives the same
samples, and different seeds give different valves, factories and leaks.

Normal sound (a "scene") is the valve plus its factory:
- valve actuation clunks: short damped resonant transients (a few modes per
  valve, jittered per clunk) at irregular intervals, often in open/close pairs;
- flow noise: low-passed noise, slowly modulated;
- mains hum: 50 Hz and harmonics, with a slowly drifting fundamental;
- factory background, mixed with the valve at a MIMII-style SNR of -6, 0 or
  +6 dB: babble-like band-limited noise with syllabic modulation, broadband
  pink noise, occasional impacts (metallic clangs) and machine tones (motors,
  a fan whine).

A leak is broadband turbulent hiss (high-passed noise) with a few narrow
resonances whose frequencies differ between leaks, an onset ramp, a release,
and a slowly varying intensity. Its SNR is the leak's energy relative to the
normal sound's energy over the leak's interval: -6, 0 or +6 dB.

Commands:
  clip    one labelled clip (normal, or leak throughout at a given SNR);
  stream  a long recording with leak events (3-20 s) at known times, and a
          JSON of the event intervals; with --no-leaks, normal sound only
          (for measuring false alarms).

Both write int16 16 kHz mono WAV with the standard library's `wave` module.
"""
import argparse
import json
import wave

import numpy as np

SR = 16000
SNRS_DB = (-6, 0, 6)


# ---------------------------------------------------------------------------
# Signal helpers (NumPy only, vectorised, so minutes of audio take seconds).

def shaped_noise(rng, n, gain):
    """Unit-variance Gaussian noise of `n` samples with magnitude response `gain(f_hz)`.

    Drawn directly in the frequency domain (white Gaussian noise's spectrum is
    complex Gaussian), so one inverse FFT filters it: much faster than IIR
    filters sample by sample in Python, and single precision is ample for audio."""
    f = np.fft.rfftfreq(n, 1.0 / SR).astype(np.float32)
    spectrum = rng.standard_normal(len(f), dtype=np.float32) + 1j * rng.standard_normal(len(f), dtype=np.float32)
    x = np.fft.irfft(spectrum * np.asarray(gain(f), dtype=np.float32), n=n)
    return x / (x.std() + 1e-12)


def smooth_random(rng, n, cutoff_hz):
    """A zero-mean, unit-variance random process with no energy above `cutoff_hz`:
    the slow modulations (flow, hum drift, leak intensity) real sources have."""
    if n == 0:
        return np.zeros(0)
    # Shape at a coarse rate, then interpolate: cheaper than an n-point FFT.
    step = max(1, int(SR / (20 * cutoff_hz)))
    m = n // step + 2
    coarse = rng.standard_normal(m)
    f = np.fft.rfftfreq(m, step / SR)
    coarse = np.fft.irfft(np.fft.rfft(coarse) * (f <= cutoff_hz), n=m)
    coarse /= coarse.std() + 1e-12
    coarse = coarse.astype(np.float32)
    frac = np.tile(np.arange(step, dtype=np.float32) / step, m - 1)[:n]
    lo = np.repeat(coarse[:-1], step)[:n]
    hi = np.repeat(coarse[1:], step)[:n]
    return lo + (hi - lo) * frac


def lowpass(fc, order):
    """Butterworth-like low-pass magnitude response."""
    return lambda f: 1.0 / np.sqrt(1.0 + (f / fc) ** (2 * order))


def highpass(fc, order):
    """Butterworth-like high-pass magnitude response."""
    return lambda f: 1.0 / np.sqrt(1.0 + (fc / np.maximum(f, 1.0)) ** (2 * order))


def peak(f, fc, q):
    """A resonance's magnitude response: a two-pole band-pass of quality `q`."""
    return 1.0 / np.sqrt(1.0 + (q * (f / fc - fc / np.maximum(f, 1.0))) ** 2)


def pink(rng, n):
    """Unit-variance pink (1/f) noise, 20 Hz up: the broadband floor of a hall."""
    return shaped_noise(rng, n, lambda f: 1.0 / np.sqrt(np.maximum(f, 20.0)))


def cycle_phase(f_hz):
    """The phase (radians, wrapped) of an oscillator whose frequency is `f_hz`
    sample by sample: summed in double precision, so minutes of it stay in tune."""
    return np.mod(2 * np.pi / SR * np.cumsum(f_hz, dtype=np.float64), 2 * np.pi).astype(np.float32)


def rms(x):
    return float(np.sqrt(np.mean(np.square(x)) + 1e-20))


def add_at(out, start, burst):
    """Adds `burst` into `out` from sample `start`, cropping at both ends."""
    a, b = max(start, 0), min(start + len(burst), len(out))
    if a < b:
        out[a:b] += burst[a - start:b - start]


def damped_modes(rng, freqs, decays, amps, length):
    """A sum of exponentially damped sinusoids with random phases: a struck resonator."""
    t = np.arange(length) / SR
    out = np.zeros(length)
    for f, d, a in zip(freqs, decays, amps):
        out += a * np.exp(-t / d) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return out


# ---------------------------------------------------------------------------
# Normal sound: a valve in a factory.

def draw_scene(rng):
    """Every per-recording choice of the normal sound, drawn once so a clip or a
    stream has one valve and one factory (and other seeds get other ones)."""
    modes = int(rng.integers(2, 5))
    return {
        "clunk_rate_hz": float(rng.uniform(0.3, 2.0)),
        "clunk_pair_prob": float(rng.uniform(0.2, 0.8)),
        "clunk_modes_hz": sorted(float(f) for f in np.exp(rng.uniform(np.log(150), np.log(3500), modes))),
        "clunk_decay_s": [float(d) for d in rng.uniform(0.01, 0.08, modes)],
        "clunk_click": float(rng.uniform(0.1, 0.6)),
        "flow_cutoff_hz": float(rng.uniform(250, 1500)),
        "flow_level": float(10 ** (rng.uniform(-12, 0) / 20)),
        "flow_mod_depth": float(rng.uniform(0.1, 0.5)),
        "hum_hz": float(rng.uniform(49.8, 50.2)),
        "hum_drift_hz": float(rng.uniform(0.02, 0.3)),
        "hum_level": float(10 ** (rng.uniform(-24, -6) / 20)),
        "hum_harmonics": [float(a) for a in rng.uniform(0, 1, 8) * (np.arange(1, 9) ** -rng.uniform(0.5, 1.5))],
        "factory_snr_db": float(rng.choice(SNRS_DB) + rng.uniform(-1, 1)),
        "babble_talkers": int(rng.integers(3, 7)),
        "babble_level": float(10 ** (rng.uniform(-10, 0) / 20)),
        "pink_level": float(10 ** (rng.uniform(-12, 0) / 20)),
        "impact_rate_hz": float(rng.uniform(0.02, 0.3)),
        "impact_level": float(10 ** (rng.uniform(-6, 6) / 20)),
        "machine_tones_hz": [float(f) for f in np.exp(rng.uniform(np.log(60), np.log(1200), int(rng.integers(1, 4))))],
        "machine_level": float(10 ** (rng.uniform(-18, -3) / 20)),
        "whine_hz": float(rng.uniform(2500, 6500)) if rng.uniform() < 0.4 else 0.0,
        "whine_level": float(10 ** (rng.uniform(-30, -15) / 20)),
        "level_dbfs": float(rng.uniform(-32, -20)),
    }


def clunks(rng, n, s):
    """Valve actuations: damped modes plus a click, at irregular (gamma) intervals,
    a second (closing) clunk after some of them, each with its own jitter."""
    out = np.zeros(n, dtype=np.float32)
    t = rng.uniform(0, 1 / s["clunk_rate_hz"]) * SR
    length = int(0.4 * SR)
    while t < n:
        for k in range(2 if rng.uniform() < s["clunk_pair_prob"] else 1):
            freqs = np.array(s["clunk_modes_hz"]) * rng.uniform(0.95, 1.05, len(s["clunk_modes_hz"]))
            decays = np.array(s["clunk_decay_s"]) * rng.uniform(0.8, 1.25, len(freqs))
            amps = rng.uniform(0.4, 1.0, len(freqs)) * 10 ** (rng.uniform(-6, 0) / 20)
            burst = damped_modes(rng, freqs, decays, amps, length)
            click_len = int(rng.uniform(0.001, 0.004) * SR)
            burst[:click_len] += s["clunk_click"] * rng.standard_normal(click_len) * np.hanning(click_len)
            add_at(out, int(t + k * rng.uniform(0.05, 0.3) * SR), burst)
        t += rng.gamma(2.0, 0.5 / s["clunk_rate_hz"]) * SR
    return out


def flow(rng, n, s):
    """Flow through the valve: low-passed noise whose level drifts slowly."""
    x = shaped_noise(rng, n, lowpass(s["flow_cutoff_hz"], 2))
    return s["flow_level"] * x * np.maximum(0.1, 1 + s["flow_mod_depth"] * smooth_random(rng, n, 0.5))


def hum(rng, n, s):
    """Mains hum: a fundamental near 50 Hz that wanders, and its harmonics."""
    f0 = s["hum_hz"] + s["hum_drift_hz"] * smooth_random(rng, n, 0.05)
    phase = cycle_phase(f0)
    x = sum(a * np.sin((k + 1) * phase + rng.uniform(0, 2 * np.pi)) for k, a in enumerate(s["hum_harmonics"]))
    return s["hum_level"] * x / (rms(x) + 1e-12)


def babble(rng, n, talkers):
    """Babble-like noise: talkers as speech-band noises with their own spectral
    peaks and 3-6 Hz syllabic envelopes, summed."""
    out = np.zeros(n, dtype=np.float32)
    for _ in range(talkers):
        formants = np.exp(rng.uniform(np.log(250), np.log(3500), 3))
        gain = lambda f, fm=formants: sum(peak(f, fc, 3.0) for fc in fm) * highpass(150, 2)(f) * lowpass(4000, 2)(f)
        envelope = np.maximum(0.0, smooth_random(rng, n, rng.uniform(3, 6)) + rng.uniform(-0.5, 0.5))
        out += shaped_noise(rng, n, gain) * envelope
    return out / (rms(out) + 1e-12)


def impacts(rng, n, s):
    """Occasional metallic impacts elsewhere in the hall: a noise burst exciting
    high, long-ringing modes (the sound most like a hiss onset)."""
    out = np.zeros(n, dtype=np.float32)
    count = rng.poisson(s["impact_rate_hz"] * n / SR)
    length = int(0.6 * SR)
    for start in rng.integers(0, max(n, 1), count):
        modes = int(rng.integers(2, 6))
        freqs = np.exp(rng.uniform(np.log(400), np.log(7000), modes))
        burst = damped_modes(rng, freqs, rng.uniform(0.02, 0.25, modes), rng.uniform(0.2, 1.0, modes), length)
        hit = int(rng.uniform(0.002, 0.02) * SR)
        burst[:hit] += rng.standard_normal(hit) * np.exp(-np.arange(hit) / (hit / 4))
        add_at(out, int(start), burst * 10 ** (rng.uniform(-12, 0) / 20))
    return out


def machines(rng, n, s):
    """Machine tones: motors (a fundamental and harmonics, slow AM) and sometimes a fan whine."""
    out = np.zeros(n, dtype=np.float32)
    for f in s["machine_tones_hz"]:
        f_t = f * (1 + 0.002 * smooth_random(rng, n, 0.1))
        phase = cycle_phase(f_t)
        tone = sum(rng.uniform(0.2, 1) / k * np.sin(k * phase + rng.uniform(0, 6.3)) for k in range(1, 5))
        out += tone * (1 + 0.2 * smooth_random(rng, n, 1.0))
    out = s["machine_level"] * out / (rms(out) + 1e-12)
    if s["whine_hz"] > 0:
        whine = cycle_phase(np.full(n, s["whine_hz"])) + 0.3 * smooth_random(rng, n, 0.3)
        out += s["whine_level"] * np.sqrt(2) * np.sin(whine)
    return out


def normal_sound(rng, n, s):
    """The valve (clunks, flow, hum) plus the factory at the scene's factory SNR."""
    valve = clunks(rng, n, s) + flow(rng, n, s) + hum(rng, n, s)
    factory = (s["babble_level"] * babble(rng, n, s["babble_talkers"]) + s["pink_level"] * pink(rng, n)
               + machines(rng, n, s))
    factory_rms = rms(factory)
    factory += s["impact_level"] * factory_rms * impacts(rng, n, s)
    factory *= rms(valve) / (rms(factory) + 1e-12) * 10 ** (-s["factory_snr_db"] / 20)
    return valve + factory


# ---------------------------------------------------------------------------
# Leaks.

def draw_leak(rng, seconds):
    """Every choice of one leak: its hiss, resonances, ramps and intensity drift."""
    count = int(rng.integers(1, 5))
    return {
        "hiss_cutoff_hz": float(rng.uniform(800, 4000)),
        "hiss_order": int(rng.integers(1, 4)),
        "hiss_tilt": float(rng.uniform(-0.5, 0.3)),
        "resonances_hz": sorted(float(f) for f in np.exp(rng.uniform(np.log(700), np.log(7200), count))),
        "resonance_q": [float(q) for q in np.exp(rng.uniform(np.log(8), np.log(80), count))],
        "resonance_gain_db": [float(g) for g in rng.uniform(3, 20, count)],
        "onset_s": float(min(rng.uniform(0.05, 3.0), 0.4 * seconds)),
        "release_s": float(min(rng.uniform(0.05, 1.0), 0.2 * seconds)),
        "intensity_depth": float(rng.uniform(0.05, 0.4)),
        "intensity_rate_hz": float(rng.uniform(0.1, 2.0)),
    }


def leak_sound(rng, n, leak):
    """Hiss (high-passed, tilted noise) with narrow resonances, an onset ramp, a
    release and a slowly varying intensity; unit RMS."""
    def gain(f):
        hiss = highpass(leak["hiss_cutoff_hz"], leak["hiss_order"])(f) * (np.maximum(f, 1.0) / 4000) ** leak["hiss_tilt"]
        res = sum(10 ** (g / 20) * peak(f, fc, q) for fc, q, g in
                  zip(leak["resonances_hz"], leak["resonance_q"], leak["resonance_gain_db"]))
        return hiss * (1 + res)
    x = shaped_noise(rng, n, gain)
    envelope = np.maximum(0.05, 1 + leak["intensity_depth"] * smooth_random(rng, n, leak["intensity_rate_hz"]))
    t = np.arange(n) / SR
    envelope *= np.clip(t / leak["onset_s"], 0, 1) ** 2 * np.clip((n / SR - t) / leak["release_s"], 0, 1)
    x *= envelope
    return x / (rms(x) + 1e-12)


def to_int16(x, level_dbfs, reference):
    """Scales `x` so the normal sound `reference` has an RMS of `level_dbfs`, and
    quantises, clipping like a real ADC: the microphone's gain is fixed, so a
    leak makes the recording louder rather than the valve quieter."""
    x = x * (10 ** (level_dbfs / 20) / (rms(reference) + 1e-12))
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


# ---------------------------------------------------------------------------
# Clips and streams.

def clip(seed, seconds, snr_db=None):
    """One clip of `seconds`: normal sound, or (with `snr_db`) a leak throughout it.

    The leak starts before the clip (its onset ramp is cropped off) so every
    window of a leak clip really holds a leak, and the label is exact. The
    normal sound depends on the seed only: clip(s, t) and clip(s, t, snr) are
    the same valve and factory, sample for sample, without and with a leak."""
    rng = np.random.default_rng([seed, 1])
    s = draw_scene(rng)
    n = int(round(seconds * SR))
    x = normal_sound(rng, n, s)
    info = {"seed": seed, "seconds": seconds, "label": "normal" if snr_db is None else "leak", "scene": s}
    if snr_db is not None:
        leak = draw_leak(rng, seconds + 3.0)
        lead = int(round(leak["onset_s"] * SR))
        leak["release_s"] = 0.01  # ramps down after the clip's end: cropped off with the onset
        y = leak_sound(rng, n + lead + SR // 10, leak)[lead:lead + n]
        normal = x
        x = x + y / (rms(y) + 1e-12) * rms(x) * 10 ** (snr_db / 20)
        info.update(snr_db=snr_db, leak=leak)
        return to_int16(x, s["level_dbfs"], normal), info
    return to_int16(x, s["level_dbfs"], x), info


def plan_events(rng, seconds, snrs):
    """Leak events of 3-20 s with 8-40 s of normal sound around each, their SNRs
    cycling through `snrs` in a shuffled order (so each stream has all of them);
    none when `snrs` is empty."""
    if not snrs:
        return []
    events, t, order = [], rng.uniform(5, 20), []
    while True:
        length = rng.uniform(3, 20)
        if t + length > seconds - 5:
            return events
        if not order:
            order = list(rng.permutation(snrs))
        events.append((t, t + length, float(order.pop())))
        t += length + rng.uniform(8, 40)


def stream(seed, minutes, snrs=SNRS_DB):
    """A long recording of one valve in one factory with leak events at known times.

    Each event has its own leak (resonance frequencies, ramps, intensity) and
    its SNR is measured against the normal sound over the event's interval.
    With `snrs=()` the recording has no leak: the same valve and factory,
    sample for sample, as the normal sound under the seed's leaks."""
    rng = np.random.default_rng([seed, 2])
    s = draw_scene(rng)
    n = int(round(minutes * 60 * SR))
    x = normal_sound(rng, n, s)
    out = x.copy()
    events = []
    for start, end, snr_db in plan_events(rng, n / SR, snrs):
        a, b = int(round(start * SR)), int(round(end * SR))
        leak = draw_leak(rng, end - start)
        y = leak_sound(rng, b - a, leak)
        out[a:b] += y * rms(x[a:b]) * 10 ** (snr_db / 20)
        events.append({"start": round(a / SR, 4), "end": round(b / SR, 4), "snr_db": snr_db, "leak": leak})
    info = {"seed": seed, "sample_rate": SR, "seconds": n / SR, "scene": s, "events": events}
    return to_int16(out, s["level_dbfs"], x), info


def write_wav(path, samples):
    """Writes int16 mono 16 kHz WAV with the standard library."""
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())


def read_wav(path):
    """Reads int16 mono 16 kHz WAV (what this script writes) as an int16 array."""
    with wave.open(path, "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getframerate() != SR:
            raise ValueError(f"{path}: need 16 kHz mono int16")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("clip", help="one labelled clip")
    c.add_argument("--seed", type=int, required=True)
    c.add_argument("--seconds", type=float, default=4.0)
    c.add_argument("--snr", type=float, default=None, help="leak SNR in dB (omit for a normal clip)")
    c.add_argument("--out", required=True, help="WAV path")
    c.add_argument("--info", help="optional JSON of the clip's parameters")
    s = sub.add_parser("stream", help="a long recording with leak events")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--minutes", type=float, default=5.0)
    s.add_argument("--snrs", default="-6,0,6", help="comma-separated leak SNRs in dB, cycled through")
    s.add_argument("--no-leaks", action="store_true", help="normal sound only (no leak events)")
    s.add_argument("--out", required=True, help="WAV path")
    s.add_argument("--events", required=True, help="JSON path for the event intervals")
    args = parser.parse_args()
    if args.command == "clip":
        samples, info = clip(args.seed, args.seconds, args.snr)
        write_wav(args.out, samples)
        if args.info:
            with open(args.info, "w") as f:
                json.dump(info, f, indent=1)
    else:
        snrs = () if args.no_leaks else tuple(float(v) for v in args.snrs.split(","))
        samples, info = stream(args.seed, args.minutes, snrs)
        write_wav(args.out, samples)
        with open(args.events, "w") as f:
            json.dump(info, f, indent=1)
        print(f"{args.out}: {info['seconds']:.0f} s, {len(info['events'])} leak events")


if __name__ == "__main__":
    main()
