"""bench.bf16_kernels: the oneDNN verbose summary and its one-line argument errors."""
import subprocess
import sys

import pytest

from bench.bf16_kernels import MARK, main, summarize

LINES = [
    "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core,forward_training,"
    "src:f32::blocked:acdb::f0 wei:f32:a:blocked:Acdb64a::f0,attr-scratchpad:user,"
    "alg:convolution_direct,mb200_ic32oc64,2.5",
    "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core,forward_training,"
    "src:f32::blocked:acdb::f0 wei:f32:a:blocked:Acdb64a::f0,attr-scratchpad:user,"
    "alg:convolution_direct,mb200_ic32oc64,1.5",
    "onednn_verbose,v1,primitive,exec,cpu,pooling,jit:avx512_core_bf16,backward_data,"
    "src:bf16::blocked:acdb::f0 dst:bf16::blocked:acdb::f0 ws:u8::blocked:acdb::f0,,"
    "alg:pooling_max,mb200ic32,0.25",
]


def test_summary_groups_each_marked_section_by_kernel_and_sums_its_milliseconds(tmp_path):
    log = tmp_path / "verbose.log"
    log.write_text("\n".join([LINES[0], f"{MARK}step loop float32", *LINES,
                              f"{MARK}weight gradient float32", LINES[2], "other output"]) + "\n")
    got = summarize([str(log)])[str(log)]
    assert list(got) == ["step loop float32", "weight gradient float32"]  # before a mark: skipped
    assert got["step loop float32"] == [
        [2, 4.0, "convolution", "brg_conv_fwd:avx512_core", "forward_training",
         "src:f32 wei:f32", "mb200_ic32oc64"],
        [1, 0.25, "pooling", "jit:avx512_core_bf16", "backward_data", "src:bf16 dst:bf16",
         "mb200ic32"]]
    assert [row[0] for row in got["weight gradient float32"]] == [1]


@pytest.mark.parametrize("argv,needle", [(["trace", "int8"], "float32 or bfloat16"),
                                         (["summarize"], "the verbose logs"),
                                         (["ab", "--rounds", "0"], "--rounds must be >= 1")])
def test_bad_arguments_are_one_line_errors_before_any_compute(argv, needle):
    run = subprocess.run([sys.executable, "-m", "bench.bf16_kernels", *argv],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert needle in run.stderr.strip().splitlines()[-1]
