"""The pretraining defaults that depend on the machine."""

from __future__ import annotations

from pathlib import Path

from policy.training.config import cpu_has_native_bf16

# Shortened /proc/cpuinfo of two real CPUs: an AVX2-only AMD EPYC and a Sapphire Rapids Xeon.
EPYC_AVX2 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n"
XEON_SPR = "processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n"


def test_bf16_autocast_only_where_the_cpu_has_it(tmp_path: Path) -> None:
    epyc, xeon = tmp_path / "epyc", tmp_path / "xeon"
    epyc.write_text(EPYC_AVX2)
    xeon.write_text(XEON_SPR)
    assert cpu_has_native_bf16(epyc) is False
    assert cpu_has_native_bf16(xeon) is True
    # A flag that merely contains the text (avx512_bf16_foo) is not the flag.
    epyc.write_text(EPYC_AVX2.replace("bmi2", "avx512_bf16_foo"))
    assert cpu_has_native_bf16(epyc) is False


def test_unreadable_cpuinfo_means_no_bf16(tmp_path: Path) -> None:
    assert cpu_has_native_bf16(tmp_path / "missing") is False
