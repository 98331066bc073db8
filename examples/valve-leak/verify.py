#!/usr/bin/env python3
"""Checks that the trained leak score landed in the iop binary's valve model.

Run after train.py and `swift build -c release --product iop`. It
1. reads ValveHead.swift back (4096 weights, bias, threshold, K) and checks
   them against model.json;
2. exports the valve model with the rebuilt binary and checks its `score`
   initialisers are bit for bit the Swift literals;
3. recomputes the held-out patches train.py recorded in model.json (same
   stream seed, same front end) and runs them through ONNX Runtime on the
   exported model and through the binary's own engine (`iop infer`): both
   sigmoid(output)s must equal the probability train.py computed.
"""
import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import frontend  # noqa: E402
import synth  # noqa: E402


def read_head(path):
    """ValveHead.swift's weights as train.scores's head (a list of ([out, in] float32, [out] float32)
    layers), its threshold and K (parsed, not trusted)."""
    text = open(path).read()

    def array(name):
        m = re.search(r"static let " + name + r": \[Float\] = \[(.*?)\]", text, re.S)
        if m is None and name == "hiddenBias":  # a head written before the MLP: the logistic regression
            return np.zeros(0, np.float32)
        return np.array([np.float32(v) for v in re.findall(r"[-+0-9.eE]+", m.group(1))], dtype=np.float32)

    threshold = np.float32(re.search(r"static let threshold: Float = ([-+0-9.eE]+)", text).group(1))
    k = int(re.search(r"static let consecutive: Int = (\d+)", text).group(1))
    w, b, hidden_bias = array("weights"), array("bias"), array("hiddenBias")
    if not len(hidden_bias):
        return [(w[None, :], b)], threshold, k
    coded = re.search(r'static let hiddenWeights: \[Float\] = floats\(\s*base64: """(.*?)"""', text, re.S).group(1)
    hidden = np.frombuffer(base64.b64decode("".join(coded.split())), dtype="<f4").astype(np.float32)
    return [(hidden.reshape(len(hidden_bias), -1), hidden_bias), (w[None, :], b)], threshold, k


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iop", default=os.path.join(ROOT, ".build/release/iop"), help="the rebuilt iop binary")
    parser.add_argument("--swift", default=os.path.join(ROOT, "Sources/IOPModel/ValveHead.swift"))
    parser.add_argument("--json", default=os.path.join(HERE, "model.json"))
    parser.add_argument("--workdir", default="/tmp/valve-leak")
    parser.add_argument("--tolerance", type=float, default=1e-5, help="largest |probability difference| allowed")
    parser.add_argument("--logit-tolerance", type=float, default=1e-3,
                        help="largest |logit difference| allowed (float32 sums of 4096 products differ slightly)")
    args = parser.parse_args()
    import onnx
    import onnxruntime as ort

    model = json.load(open(args.json))
    head, threshold, k = read_head(args.swift)
    assert head[0][0].shape[1] == 4096 and head[-1][1].shape == (1,), [w.shape for w, _ in head]
    assert threshold == np.float32(model["threshold"]) and k == model["consecutive"], "model.json and Swift differ"
    print(f"ValveHead.swift: layers {' -> '.join(str(w.shape[1]) for w, _ in head)} -> 1,"
          f" threshold {threshold:.6g}, K {k}")

    os.makedirs(args.workdir, exist_ok=True)
    onnx_path = os.path.join(args.workdir, "verify-valve.onnx")
    subprocess.run([args.iop, "export", "--model", "valve", "--out", onnx_path], check=True, stdout=subprocess.DEVNULL)
    graph = onnx.load(onnx_path)
    init = {t.name: onnx.numpy_helper.to_array(t) for t in graph.graph.initializer}
    names = ["hidden", "score"][-len(head):]
    for name, (w, b) in zip(names, head):
        assert np.array_equal(init[name + ".weight"].reshape(w.shape), w), f"exported {name}.weight differs"
        assert np.array_equal(init[name + ".bias"].reshape(-1), b), f"exported {name}.bias differs"
    print(f"exported model: {' and '.join(names)} weights and biases equal ValveHead.swift's bit for bit")

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    worst = worst_logit = 0.0
    streams = {}
    for check in model["checks"]:
        key = (check["stream_seed"], check["minutes"])
        if key not in streams:
            samples, _ = synth.stream(*key)
            streams[key] = frontend.patches(samples)[0]
        patch = streams[key][check["patch"]][None, None].astype(np.float32)
        z_ort = float(session.run(["output"], {"input": patch})[0][0, 0])
        with tempfile.TemporaryDirectory() as tmp:
            np.save(os.path.join(tmp, "in.npy"), patch)
            subprocess.run([args.iop, "infer", "--model", "valve", "--input", os.path.join(tmp, "in.npy"),
                            "--output", os.path.join(tmp, "out.npy")], check=True, stdout=subprocess.DEVNULL)
            z_iop = float(np.load(os.path.join(tmp, "out.npy")).reshape(-1)[0])
        p_ort, p_iop = (1 / (1 + np.exp(-z)) for z in (z_ort, z_iop))
        worst = max(worst, abs(p_ort - check["probability"]), abs(p_iop - check["probability"]))
        worst_logit = max(worst_logit, abs(z_ort - check["logit"]), abs(z_iop - check["logit"]))
        print(f"  stream {key[0]} patch {check['patch']:4d}: trained {check['probability']:.7f}"
              f" (logit {check['logit']:+.5f})  onnxruntime {p_ort:.7f} ({z_ort:+.5f})"
              f"  iop infer {p_iop:.7f} ({z_iop:+.5f})")
    if worst > args.tolerance or worst_logit > args.logit_tolerance:
        raise SystemExit(f"FAILED: largest difference {worst:.3g} in probability, {worst_logit:.3g} in logit")
    print(f"OK: the rebuilt model scores held-out patches as trained (largest difference {worst:.2g} in"
          f" probability, {worst_logit:.2g} in logit)")


if __name__ == "__main__":
    main()
