"""Analytic FLOP count of one attack step on the challenge CNN, and a matmul peak probe."""
from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

# MACs per example of the challenge CNN's forward pass (SAME padding, NHWC):
#   conv1 5x5x1 -> 32 on 28x28:   28*28*32 * 5*5*1   =    627,200
#   conv2 5x5x32 -> 64 on 14x14:  14*14*64 * 5*5*32  = 10,035,200
#   fc1 3136 -> 1024:             3136*1024          =  3,211,264
#   fc2 1024 -> 10:               1024*10            =     10,240
# The backward pass to the INPUT (no weight gradients) needs the transposed op of every
# layer once: Conv2DBackpropInput for conv2 and conv1 (same MACs as the forward conv) and
# x @ W^T for fc2, fc1. Element-wise ops (bias, ReLU, pooling, softmax, sign, clip) are
# < 0.1% and not counted. One step = forward + backward-to-input = 2 x forward MACs.
FORWARD_MACS = 28 * 28 * 32 * 5 * 5 * 1 + 14 * 14 * 64 * 5 * 5 * 32 + 3136 * 1024 + 1024 * 10
STEP_MACS = 2 * FORWARD_MACS
STEP_FLOP = 2 * STEP_MACS  # 1 MAC = 2 FLOP -> 55,535,616 FLOP per example-step


def matmul_peak(sizes=(2048, 4096), dtype=tf.float32, repeats: int = 5) -> dict:
    """Best GFLOP/s of a square ``tf.matmul`` (2 n^3 FLOP), median of ``repeats`` per size."""
    out = {}
    for n in sizes:
        a = tf.random.uniform([n, n], dtype=tf.float32)
        b = tf.random.uniform([n, n], dtype=tf.float32)
        a, b = tf.cast(a, dtype), tf.cast(b, dtype)
        f = tf.function(lambda a, b: tf.matmul(a, b))
        f(a, b).numpy()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            f(a, b).numpy()
            times.append(time.perf_counter() - t)
        out[n] = 2.0 * n ** 3 / float(np.median(times)) / 1e9
    return {"gflops_by_n": out, "peak_gflops": max(out.values()), "dtype": dtype.name}
