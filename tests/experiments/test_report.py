"""experiments.report: the machine line every cell's provenance records."""
import os

from experiments import report


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def test_machine_names_the_cpu_family_and_model_beside_a_generic_model_name(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    block = "processor\t: {i}\nvendor_id\t: AuthenticAMD\ncpu family\t: {f}\nmodel\t\t: {m}\n" \
            "model name\t: AMD EPYC\n\n"
    # The first processor's block is the one read, even when a later one says otherwise.
    cpuinfo.write_text(block.format(i=0, f=26, m=2) + block.format(i=1, f=25, m=17))
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24670000 kB\nMemFree:        1000 kB\n")
    assert report.machine(cpuinfo, meminfo) == \
        f"AMD EPYC, family 26 model 2 ({_cores()} cores, 24 GiB)"


def test_machine_without_family_numbers_keeps_the_model_name_alone(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\n")
    assert report.machine(cpuinfo, tmp_path / "missing") == f"Some CPU ({_cores()} cores)"
