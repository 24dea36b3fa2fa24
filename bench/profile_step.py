"""Where one attack step's time goes (batch 200 by default), and the A/B of the backward kernels.

    python -m bench.profile_step --model_dir DIR --data_dir DIR [--pause_pid PID] \\
        --out bench/profile_cpu.json

Times, per compute dtype, with one warm-up and the median of --repeats:
  forward      logits of the Keras model (tf.function)
  gradient     forward + input gradient of the summed xent (tf.function; no sign / clip)
  engine_step  our compiled step loop (StepRunner.run of 20 steps) / 20
  kernels      each conv / matmul of forward and backward-to-input alone (float32 only)
  *_fast       the replacements attacks.fast_backward uses for conv1 and fc1 backward-to-input
and `perturb` end to end (1,000 images, PGD-20) with TensorFlow's stock backward kernels vs
attacks.fast_backward (float32; bfloat16 models are not rewritten, so its two rows agree).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import tensorflow as tf

import attacks
import attacks.api
from attacks.fast_backward import conv2d_input_gradient
from bench.flops import STEP_FLOP
from bench.throughput import paused
from mnist_challenge_compat import load_dataset, load_model
from experiments.report import write_json


def med_time(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--model_dir", required=True)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--pause_pid", type=int, default=None)
    p.add_argument("--out", default="bench/profile_cpu.json")
    args = p.parse_args(argv)
    model = load_model(args.model_dir)
    x_all, y_all = load_dataset("mnist", "test", args.data_dir)
    bs = args.batch
    x = tf.constant(x_all[:bs]); y = tf.constant(y_all[:bs].astype(np.int64))
    out = {"batch": bs, "per_example_step_us": {}}
    with paused(args.pause_pid):
        for dtype in ("float32", "bfloat16"):
            m = attacks.attack_model(model, dtype)
            fwd = tf.function(lambda x: m(x, training=False))

            @tf.function
            def grad(x, y):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
                        y, tf.cast(m(x, training=False), tf.float32)))
                return tape.gradient(loss, x)
            cfg = attacks.AttackConfig(method="pgd", epsilon=0.3, steps=20, step_size=0.01,
                                       batch_size=bs, compute_dtype=dtype, xla="off")
            runner = attacks.api.make_runner(model, cfg)
            xn, yn = x.numpy(), y.numpy()
            r = {"forward": med_time(lambda: fwd(x).numpy(), args.repeats),
                 "gradient": med_time(lambda: grad(x, y).numpy(), args.repeats),
                 "engine_step": med_time(lambda: runner.run(xn, xn, yn, 20), args.repeats) / 20}
            out["per_example_step_us"][dtype] = {k: 1e6 * v / bs for k, v in r.items()}
        # the kernels alone, float32
        w = [tf.constant(v) for v in model.get_weights()]
        a0 = tf.reshape(x, [-1, 28, 28, 1])
        a1 = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(a0, w[0], 1, "SAME") + w[1]), 2, 2, "SAME")
        a2 = tf.reshape(tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(a1, w[2], 1, "SAME") + w[3]),
                                         2, 2, "SAME"), [-1, 3136])
        a3 = tf.nn.relu(a2 @ w[4] + w[5])
        g2 = tf.ones([bs, 14, 14, 64]); g1 = tf.ones([bs, 28, 28, 32])
        ops = {
            "conv1_fwd": lambda: tf.nn.conv2d(a0, w[0], 1, "SAME"),
            "conv1_bwd_input": lambda: tf.nn.conv2d_transpose(g1, w[0], [bs, 28, 28, 1], 1, "SAME"),
            "conv2_fwd": lambda: tf.nn.conv2d(a1, w[2], 1, "SAME"),
            "conv2_bwd_input": lambda: tf.nn.conv2d_transpose(g2, w[2], [bs, 14, 14, 32], 1, "SAME"),
            "fc1_fwd": lambda: a2 @ w[4],
            "fc1_bwd_input": lambda: tf.matmul(a3, w[4], transpose_b=True),
            # what attacks.fast_backward computes instead of the two slow ones above
            "conv1_bwd_input_fast": lambda: conv2d_input_gradient(g1, w[0], (28, 28), "same"),
            "fc1_bwd_input_fast": lambda: tf.einsum("...j,ij->...i", a3, w[4]),
        }
        kern = {}
        for k, f in ops.items():
            tf_f = tf.function(f)
            kern[k] = 1e6 * med_time(lambda: tf_f().numpy(), args.repeats) / bs
        out["kernels_float32_us_per_example"] = kern
        stock = [k for k in kern if not k.endswith("_fast")]
        out["kernels_sum_stock_us"] = sum(kern[k] for k in stock)
        out["kernels_sum_fast_backward_us"] = sum(kern.get(k + "_fast", kern[k]) for k in stock)
        # A/B: perturb end to end with TensorFlow's stock backward kernels vs fast_backward
        xs, ys = x_all[:1000], y_all[:1000].astype(np.int64)
        ab = {}
        for label, view in (("stock_kernels", lambda m: m),
                            ("fast_backward", attacks.api.with_fast_input_gradient)):
            saved = attacks.api.with_fast_input_gradient
            attacks.api.with_fast_input_gradient = view
            try:
                for dtype in ("float32", "bfloat16"):
                    t = med_time(lambda: attacks.perturb(
                        model, xs, ys, method="pgd", epsilon=0.3, steps=20, step_size=0.01,
                        random_start=False, batch_size=bs, compute_dtype=dtype, xla="off"),
                        args.repeats)
                    ab[f"{label}/{dtype}"] = 1000 * 20 / t
            finally:
                attacks.api.with_fast_input_gradient = saved
        out["perturb_example_steps_per_s"] = ab
    out["step_flop"] = STEP_FLOP
    print(json.dumps(out, indent=1))
    write_json(args.out, out)


if __name__ == "__main__":
    main()
