"""tools/gpu/fatbin.py: reading real NVIDIA fat binaries and blanking what one GPU cannot load.

data/probe_fatbin.so holds a fatbin made by NVIDIA's own ``fatbinary`` (zstd-compressed
images, as in onnxruntime-gpu 1.31.1; see data/make_probe_fatbin.py); ctranslate2's library,
when the eval extra is installed, is a large one built by another NVIDIA toolchain (LZ4).
The zstd command line, where present, inflates the blanked frames independently of our code.
"""

from __future__ import annotations

import importlib.util
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "tools" / "gpu"))
import fatbin  # noqa: E402  # tools/gpu/fatbin.py

PROBE = Path(__file__).parent / "data" / "probe_fatbin.so"


def _section(path: Path) -> tuple[bytes, int, int]:
    data = path.read_bytes()
    offset, size = fatbin.elf_section(data, ".nv_fatbin")
    return data, offset, size


def _zstd(frame: bytes) -> bytes:
    done = subprocess.run(["zstd", "-d", "-c", "-q"], input=frame, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_reads_every_image_of_nvidias_fatbin() -> None:
    data, offset, size = _section(PROBE)
    section = data[offset:offset + size]
    (container,) = fatbin.read_fatbin(section)
    assert [e.name for e in container.entries] == ["sm_80", "sm_90", "sm_90a", "compute_80", "compute_100"]
    assert container.offset == 0 and container.size == size  # the entries tile the container exactly
    for e in container.entries:
        assert section[e.payload_offset:e.payload_offset + 4] == fatbin.ZSTD_MAGIC
        assert e.compressed_size <= e.payload_size
    if shutil.which("zstd"):  # our reading of the size fields, against zstd itself
        for e in container.entries:
            frame = section[e.payload_offset:e.payload_offset + e.compressed_size]
            image = _zstd(frame)
            assert len(image) == e.content_size
            assert image.startswith(b"\x7fELF") == (e.kind == fatbin.KIND_ELF)


def test_blanking_for_sm90_keeps_what_an_h100_can_load_and_moves_nothing() -> None:
    data, offset, size = _section(PROBE)
    out = bytearray(data)
    report = fatbin.blank_unloadable(memoryview(out)[offset:offset + size], 90)
    assert report.kept == {"sm_90": 1, "sm_90a": 1, "compute_80": 1}  # compute_80 PTX JIT-compiles on 9.0
    assert report.blanked == {"sm_80": 1, "compute_100": 1}  # sm_80 cubins never run on 9.0
    assert len(out) == len(data) and out[:offset] == data[:offset] and out[offset + size:] == data[offset + size:]
    fatbin.check_blanked(data[offset:offset + size], out[offset:offset + size], 90)
    before, after = fatbin.read_fatbin(data[offset:offset + size]), fatbin.read_fatbin(out[offset:offset + size])
    assert before == after
    section = out[offset:offset + size]
    for e in after[0].entries:
        payload = section[e.payload_offset:e.payload_offset + e.payload_size]
        original = data[offset + e.payload_offset:offset + e.payload_offset + e.payload_size]
        if e.name in report.kept:
            assert payload == original
        else:
            assert payload != original and payload.startswith(fatbin.ZSTD_MAGIC)
            if shutil.which("zstd"):
                assert _zstd(bytes(payload[:e.compressed_size])) == bytes(e.content_size)


def test_check_blanked_catches_a_changed_byte_anywhere() -> None:
    data, offset, size = _section(PROBE)
    section = bytearray(data[offset:offset + size])
    fatbin.blank_unloadable(memoryview(section), 90)
    entries = fatbin.read_fatbin(section)[0].entries
    kept = next(e for e in entries if e.name == "sm_90a")
    blanked = next(e for e in entries if e.name == "sm_80")
    for where in (kept.payload_offset + 7, blanked.payload_offset + 20, kept.offset + 30):
        bad = bytearray(section)
        bad[where] ^= 1
        with pytest.raises(fatbin.FatbinError):
            fatbin.check_blanked(data[offset:offset + size], bad, 90)


@pytest.mark.parametrize(("length", "content"), [(915, 3240), (352, 668), (13, 100), (28289, 288096),
                                                  (131081, 300000), (905664, 9_000_000), (30, 393216)])
def test_zero_frames_have_the_exact_length_and_inflate_to_zeros(length: int, content: int) -> None:
    frame = fatbin.zero_zstd_frame(length, content)
    assert frame is not None and len(frame) == length
    if shutil.which("zstd"):
        assert _zstd(frame) == bytes(content)


def test_no_zero_frame_where_none_fits() -> None:
    assert fatbin.zero_zstd_frame(10, 100) is None  # header 9 + one block of 4 cannot be 10 bytes
    entry = fatbin.Entry(0, fatbin.KIND_ELF, 64, 16, 75, 0, 10, 100)
    assert fatbin.blank_payload(entry, fatbin.ZSTD_MAGIC + bytes(12)) == bytes(16)  # then plain zeros


def test_loadable_rules() -> None:
    def entry(kind: int, arch: int, flags: int = 0) -> fatbin.Entry:
        return fatbin.Entry(0, kind, 64, 0, arch, flags, 0, 0)

    elf, ptx, a = fatbin.KIND_ELF, fatbin.KIND_PTX, fatbin.FLAG_ARCH_SPECIFIC
    assert fatbin.loadable_on(entry(elf, 90), 90) and fatbin.loadable_on(entry(elf, 90, a), 90)
    assert not fatbin.loadable_on(entry(elf, 89), 90) and not fatbin.loadable_on(entry(elf, 100), 90)
    assert fatbin.loadable_on(entry(elf, 80), 86) and not fatbin.loadable_on(entry(elf, 80, a), 86)
    assert fatbin.loadable_on(entry(ptx, 75), 90) and not fatbin.loadable_on(entry(ptx, 100), 90)
    assert fatbin.loadable_on(entry(4, 120), 90)  # an unknown kind is never blanked


@pytest.mark.parametrize("cut", [5, 40, 100])
def test_refuses_a_truncated_or_foreign_section(cut: int) -> None:
    data, offset, size = _section(PROBE)
    section = bytearray(data[offset:offset + size])
    struct.pack_into("<Q", section, 8, size)  # the container claims more than the section holds
    with pytest.raises(fatbin.FatbinError, match="runs past"):
        fatbin.read_fatbin(section)
    with pytest.raises(fatbin.FatbinError):
        fatbin.read_fatbin(b"\x01" * cut + data[offset:offset + size])
    with pytest.raises(fatbin.FatbinError, match="ELF"):
        fatbin.elf_section(b"MZ" + bytes(100), ".nv_fatbin")
    with pytest.raises(fatbin.FatbinError, match="no .nv_fatbin"):
        fatbin.elf_section(Path(sys.executable).resolve().read_bytes(), ".nv_fatbin")


def test_a_large_fatbin_from_another_toolchain() -> None:
    spec = importlib.util.find_spec("ctranslate2")
    libs = sorted(Path(spec.origin).parents[1].glob("ctranslate2.libs/libctranslate2*.so*")) if spec and spec.origin \
        else []
    if not libs:
        pytest.skip("ctranslate2 (the eval extra) is not installed")
    data, offset, size = _section(libs[0])
    section = bytearray(data[offset:offset + size])
    containers = fatbin.read_fatbin(section)
    assert sum(c.size for c in containers) == size and len(containers) > 1
    report = fatbin.blank_unloadable(memoryview(section), 86)
    fatbin.check_blanked(data[offset:offset + size], section, 86)
    assert "sm_86" in report.kept and "compute_86" in report.kept and "sm_80" in report.kept
    assert all(name.startswith("sm_") and int(name[3:]) < 80 for name in report.blanked)


def _nvrtc_cubin(source: bytes, arch: str = "sm_90") -> bytes:
    nvrtc = pytest.importorskip("cuda.bindings.nvrtc")
    _, prog = nvrtc.nvrtcCreateProgram(source, b"probe.cu", 0, [], [])
    (err,) = nvrtc.nvrtcCompileProgram(prog, 1, [f"--gpu-architecture={arch}".encode()])
    assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS
    _, size = nvrtc.nvrtcGetCUBINSize(prog)
    cubin = b" " * size
    nvrtc.nvrtcGetCUBIN(prog, cubin)
    return cubin


def test_cubin_kernels_lists_the_kernels_nvrtc_compiled() -> None:
    cubin = _nvrtc_cubin(b'extern "C" __global__ void first(float* x) { x[0] = 1.0f; }\n'
                         b'extern "C" __global__ void second(float* x) { x[1] = (float)(1ull << 40) / x[2]; }')
    assert sorted(fatbin.cubin_kernels(cubin)) == ["first", "second"]


def test_images_named_unused_are_blanked_too_and_checked_as_such() -> None:
    data, offset, size = _section(PROBE)
    section = bytearray(data[offset:offset + size])
    report = fatbin.blank_unloadable(memoryview(section), 90, lambda e, payload: e.name == "sm_90")
    assert report.kept == {"sm_90a": 1, "compute_80": 1}
    assert report.blanked == {"sm_80": 1, "compute_100": 1, "sm_90 (unused)": 1}
    fatbin.check_blanked(data[offset:offset + size], section, 90, report.extra)
    with pytest.raises(fatbin.FatbinError, match="not its blank|changed"):
        fatbin.check_blanked(data[offset:offset + size], section, 90)  # not told: the sm_90 change is caught
    with pytest.raises(fatbin.FatbinError, match="not an entry"):
        fatbin.check_blanked(data[offset:offset + size], section, 90, [3])
