"""experiments.report: the machine line every cell's provenance records."""
import os

from experiments import report


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def test_machine_names_the_cpu_with_its_family_and_model_then_cores_and_memory(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24670000 kB\nMemFree:        1000 kB\n")
    assert report.machine(cpuinfo, meminfo) == \
        f"AMD EPYC, family 26 model 2 ({_cores()} cores, 24 GiB)"


def test_machine_without_memory_figures_names_cpu_and_cores(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\n")
    assert report.machine(cpuinfo, tmp_path / "missing") == f"Some CPU ({_cores()} cores)"
