"""Renders the markdown table of bench/RESULTS.md from a bench.throughput JSON file.

    python -m bench.report bench/results_cpu.json
"""
import json
import sys


def main(path):
    r = json.load(open(path))
    peak = r["peak_float32"]["peak_gflops"]
    print(f"float32 matmul peak {peak:.0f} GFLOP/s (n = "
          + ", ".join(f"{n}: {g:.0f}" for n, g in r["peak_float32"]["gflops_by_n"].items())
          + f"); bfloat16 {r['peak_bfloat16']['peak_gflops']:.0f} GFLOP/s\n")
    print("| implementation | dtype | batch | example-steps/s | x ours PGD f32 | GFLOP/s | % f32 peak | adv acc | median s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in sorted(r["rows"], key=lambda x: (x["batch"], -x["example_steps_per_s"])):
        print(f"| {row['impl']} | {row['dtype']} | {row['batch']} | {row['example_steps_per_s']:,.0f} | "
              f"{row.get('ratio_to_ours_pgd_f32', float('nan')):.2f} | {row['gflops']:.0f} | "
              f"{row['pct_of_float32_peak']:.0f}% | {100 * row['adv_accuracy']:.1f}% | {row['median_s']:.2f} |")
    if r.get("failures"):
        print("\nfailures:", json.dumps(r["failures"], indent=1))
    print("\nchecks:", json.dumps(r.get("checks", {}), indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
