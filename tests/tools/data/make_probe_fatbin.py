"""How tests/tools/data/probe_fatbin.so was made (by hand, once; CI only reads the result).

A real NVIDIA fat binary, small enough to track: one kernel compiled by NVRTC (cuda-python)
to cubins for sm_80, sm_90 and sm_90a and to PTX for compute_80 and compute_100, packed by
NVIDIA's own ``fatbinary`` (pip wheel nvidia-cuda-nvcc 13.5.37) with every image
zstd-compressed, as onnxruntime-gpu 1.31.1's are; then put into a tiny shared library's
``.nv_fatbin`` section with objcopy. ``cuobjdump --list-elf --list-ptx`` (nvidia-cuda-cuobjdump
13.4.92) lists the five images. Usage: python make_probe_fatbin.py FATBINARY OUT_DIR
"""

import subprocess
import sys
from pathlib import Path

from cuda.bindings import nvrtc

SRC = (b'extern "C" __global__ void scale(float* x, float a, int n) '
       b"{ int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] *= a; }")


def build(arch: str, ptx: bool) -> bytes:
    _, prog = nvrtc.nvrtcCreateProgram(SRC, b"probe.cu", 0, [], [])
    (err,) = nvrtc.nvrtcCompileProgram(prog, 1, [f"--gpu-architecture={arch}".encode()])
    assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS, err
    size, get = (nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX) if ptx else (nvrtc.nvrtcGetCUBINSize, nvrtc.nvrtcGetCUBIN)
    _, n = size(prog)
    buf = b" " * n
    get(prog, buf)
    return buf.rstrip(b"\0") if ptx else buf


def main(fatbinary: str, out: Path) -> None:
    images = []
    for arch, sm in [("sm_80", "80"), ("sm_90", "90"), ("sm_90a", "90a")]:
        (out / f"k_{arch}.cubin").write_bytes(build(arch, False))
        images.append(f"--image3=kind=elf,sm={sm},file={out / f'k_{arch}.cubin'}")
    for arch, sm in [("compute_80", "80"), ("compute_100", "100")]:
        (out / f"k_{arch}.ptx").write_bytes(build(arch, True))
        images.append(f"--image3=kind=ptx,sm={sm},file={out / f'k_{arch}.ptx'}")
    subprocess.run([fatbinary, f"--create={out / 'probe.fatbin'}", "--64", "--compress-all", *images], check=True)
    (out / "probe.c").write_text("int probe(void) { return 42; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-s", "-o", str(out / "probe.so"), str(out / "probe.c")],
                   check=True)
    subprocess.run(["objcopy", f"--add-section=.nv_fatbin={out / 'probe.fatbin'}",
                    "--set-section-flags=.nv_fatbin=readonly,contents", "--set-section-alignment=.nv_fatbin=8",
                    str(out / "probe.so"), str(out / "probe_fatbin.so")], check=True)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
