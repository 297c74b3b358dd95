"""The pieces that make results reproducible on another machine: the fingerprint, the precision
that fits the hardware, fixed-precision tables, deterministic figures, and a provenance record
that a redraw leaves alone."""

from __future__ import annotations

import json

import matplotlib
import pandas as pd
import torch

from sics import hardware, provenance
from sics.files import write_csv
from sics.models import precision as prec
from sics.paths import figures_dir
from sics.report import figures

matplotlib.use("Agg")


def test_the_fingerprint_tells_cpus_kernel_levels_and_precisions_apart(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # the AVX2 check itself may have set it
    cpu = torch.device("cpu")
    fp = provenance.fingerprint(cpu, "cpu-bf16")
    assert fp["device"] == "cpu" and fp["precision"] == "cpu-bf16" and fp["torch"] == torch.__version__
    assert fp["threads"] == torch.get_num_threads() and fp["cpu"] and isinstance(fp["isa"], list)
    assert fp["kernels"] == torch.backends.cpu.get_cpu_capability()
    assert set(fp["isa"]) <= set(hardware.ISA_FEATURES)
    assert provenance.fingerprint(cpu, "cpu-fp32") != fp
    assert provenance.fingerprint(cpu, "cpu-bf16", emulated=True) == {**fp, "bf16": "emulated"}
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # what the project's AVX2 check sets
    assert provenance.fingerprint(cpu, "cpu-bf16") != fp
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(hardware, "_cpuinfo", lambda: ("Other CPU", frozenset({"avx2", "fma", "amx_bf16"})))
    other = provenance.fingerprint(cpu, "cpu-bf16")
    assert other != fp and other["isa"] == ["avx2", "fma", "amx_bf16"]
    assert provenance.device_name(cpu) == f"CPU (Other CPU, amx_bf16, {torch.get_num_threads()} threads)"


def test_auto_precision_is_bf16_only_where_the_hardware_runs_it_fast_and_never_for_training(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: False)
    assert prec.precision(cpu, "auto") == "cpu-fp32" and prec.precision(cpu, "bf16") == "cpu-bf16"
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: True)
    assert prec.precision(cpu, "auto") == "cpu-bf16" and prec.precision(cpu, "fp32") == "cpu-fp32"
    with prec.autocast(cpu, "auto", cpu_auto=False):
        assert not torch.is_autocast_cpu_enabled()  # training: weights never depend on the CPU
    with prec.autocast(cpu, "auto"):
        assert torch.is_autocast_cpu_enabled()


def test_onednn_capped_below_bf16_means_no_fast_bf16(monkeypatch):
    monkeypatch.setattr(hardware, "_cpuinfo", lambda: ("CPU with AMX", frozenset({"avx2", "amx_tile"})))  # faked
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert hardware.cpu_has_fast_bf16()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not hardware.cpu_has_fast_bf16()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert hardware.cpu_has_fast_bf16()


def test_the_torch_free_hardware_answers_are_torchs(monkeypatch):
    """`sics.hardware` reads /proc and the environment instead of importing torch: here it must
    say what torch says (bf16 units, threads, CUDA)."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert hardware.cpu_has_fast_bf16() == bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    assert hardware.cuda_available() == torch.cuda.is_available()
    assert hardware.device_type() == ("cuda" if torch.cuda.is_available() else "cpu")
    assert hardware.default_threads() == torch.get_num_threads()
    assert not hardware.gpu_possible() or torch.version.cuda or torch.version.hip


def test_tables_are_written_at_a_fixed_precision_so_float_noise_never_reaches_a_file(tmp_path):
    a = pd.DataFrame({"x": [0.1 + 0.2, -0.8391741844808824, 35.510000000000005, 1e-30], "n": [1, 2, 3, 4]})
    b = a.assign(x=[0.3, -0.839174184480882, 35.51, 1e-30])  # the same numbers, summed in another order
    write_csv(tmp_path / "a.csv", a)
    write_csv(tmp_path / "b.csv", b)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_text() == "x,n\n0.3,1\n-0.839174,2\n35.51,3\n1e-30,4\n"


def test_a_figure_saved_twice_gives_the_same_bytes_with_no_date_or_version(tmp_path):
    import matplotlib.pyplot as plt

    from sics.report.output import Output

    study = Output(tmp_path, "profile=ci | rev=abc")
    saved = []
    for _ in range(2):
        fig, ax = plt.subplots()
        ax.plot([0, 1, 2], [2, 0, 1])
        paths = figures.save_figure(fig, "t", study)
        plt.close(fig)
        saved.append({k: p.read_bytes() for k, p in paths.items()})
    assert saved[0] == saved[1]
    pdf, png = saved[0]["pdf"], saved[0]["png"]
    assert b"CreationDate" not in pdf and b"Matplotlib" not in pdf and b"Software" not in png


def test_provenance_is_rewritten_only_when_the_results_change_and_each_run_is_logged(monkeypatch):
    monkeypatch.setattr(provenance, "git_revision", lambda: "rev1")
    info = dict(ckpt_id="ci-1", dense_accuracy=0.5, measured_on="CPU (X), cpu-fp32", seconds=12.0,
                data_loaded=True, device="CPU (X)")  # fmt: skip
    path = provenance.record("ci", "02_plateau", **info)
    first = path.read_bytes()
    monkeypatch.setattr(provenance, "git_revision", lambda: "rev2")
    provenance.record("ci", "02_plateau", **{**info, "seconds": 0.4, "data_loaded": False, "device": "CPU (Y)"})
    assert path.read_bytes() == first  # a redraw: the record of the run that made the results stays
    last = json.loads((figures_dir("ci") / "notebooks" / "last_run.json").read_text())
    assert last["git_revision"] == "rev2" and last["stages"]["02_plateau"]["seconds"] == 0.4
    provenance.record("ci", "02_plateau", **{**info, "dense_accuracy": 0.6})
    prov = json.loads(path.read_text())
    assert prov["git_revision"] == "rev2" and prov["stages"]["02_plateau"]["dense_accuracy"] == 0.6

