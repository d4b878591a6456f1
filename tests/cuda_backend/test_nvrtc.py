"""NVRTC compiles the decoder kernels on this GPU-less machine, for sm_80 and sm_90 (issue 26)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtvoice.cuda import nvrtc
from rtvoice.engine.cuda_engine import NVRTC_OPTIONS
from rtvoice.engine.cuda_step import KERNEL_SOURCE, KERNELS
from rtvoice.errors import BackendError


@pytest.mark.parametrize("arch", [80, 90])
def test_decoder_kernels_compile_to_a_cubin_and_are_cached(arch: int, tmp_path: Path) -> None:
    source = KERNEL_SOURCE.read_text()
    first = nvrtc.cached_cubin(source, KERNEL_SOURCE.name, arch, NVRTC_OPTIONS, cache_dir=tmp_path)
    assert not first.cached and first.cubin[:4] == b"\x7fELF"  # a cubin, not PTX text
    for kernel in KERNELS:
        assert kernel.encode() in first.cubin  # every entry point is in the image
    again = nvrtc.cached_cubin(source, KERNEL_SOURCE.name, arch, NVRTC_OPTIONS, cache_dir=tmp_path)
    assert again.cached and again.cubin == first.cubin and again.key == first.key
    changed = nvrtc.cached_cubin(source + "\n// edited\n", KERNEL_SOURCE.name, arch, NVRTC_OPTIONS,
                                 cache_dir=tmp_path)
    assert not changed.cached and changed.key != first.key
    assert len(list(tmp_path.glob("*.cubin"))) == 2


def test_keys_differ_by_architecture_options_and_nvrtc_version() -> None:
    keys = {nvrtc.cache_key("x", 80, (), (13, 0)), nvrtc.cache_key("x", 90, (), (13, 0)),
            nvrtc.cache_key("x", 80, ("-lineinfo",), (13, 0)), nvrtc.cache_key("x", 80, (), (13, 1))}
    assert len(keys) == 4


def test_a_compile_error_reports_nvrtc_log() -> None:
    with pytest.raises(BackendError, match=r"broken\.cu.*undefined"):
        nvrtc.compile_cubin('extern "C" __global__ void k() { undefined_thing(); }', "broken.cu", 90)


def test_supported_architectures_include_ampere_and_hopper() -> None:
    assert {80, 90} <= set(nvrtc.supported_archs())
    assert nvrtc.version()[0] >= 12
