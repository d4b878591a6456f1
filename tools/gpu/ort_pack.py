"""``ort_stage.py prepare``: strip the onnxruntime-gpu wheel, pack it, cut it into call-sized parts.

Why a separate module: this half runs here (pip, git, the large file work); the device half
in ort_stage.py stays short and standard-library only. Standard library only as well.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Final

import fatbin
from ort_stage import CALL_LIMIT, MANIFEST, OUT_DIR, ROOT, TARGET, StageError, sha256_file

PROVIDER: Final = "onnxruntime/capi/libonnxruntime_providers_cuda.so"
# Not used by the engine measurements (ONNX Runtime's CUDA provider on our own graphs), and
# `import onnxruntime` does not need them (checked with the cp311 build of the same wheel).
DROP: Final = (
    re.compile(r"onnxruntime/capi/libonnxruntime_providers_tensorrt\.so$"),  # TensorRT EP: no TensorRT there
    # The C API library for C/C++ programs: the Python module and the CUDA provider link it statically
    # (neither names libonnxruntime.so in its NEEDED entries or strings); 7.4 MB packed.
    re.compile(r"onnxruntime/capi/libonnxruntime\.so\.[0-9.]+$"),
    re.compile(r"onnxruntime/(transformers|quantization|tools|datasets)/"),  # offline model tools
    re.compile(r"[^/]+\.data/scripts/"),  # console scripts (onnxruntime_test, num2words)
)
GROUPED_GEMM: Final = "GroupProblemShape"  # in every CUTLASS grouped-GEMM kernel's mangled name
_MTIME: Final = 1_700_000_000  # fixed, so the same inputs pack to the same bytes


def tree_bytes(root: Path = ROOT) -> tuple[int, int]:
    """(tracked bytes, untracked-not-ignored bytes): what travels with every device call."""
    def total(*args: str) -> int:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", *args], capture_output=True, check=True)
        return sum((root / n).stat().st_size for n in out.stdout.decode().split("\0")
                   if n and (root / n).is_file() and not (root / n).is_symlink())
    return total(), total("--others", "--exclude-standard")


def default_part_size(margin_mib: float, manifest_room: int = 64 * 1024) -> tuple[int, str]:
    tracked, untracked = tree_bytes()
    margin = int(margin_mib * 1024 * 1024)
    size = CALL_LIMIT - tracked - untracked - manifest_room - margin
    how = (f"part size = 64 MiB ({CALL_LIMIT}) - tracked files ({tracked}) - untracked files ({untracked})"
           f" - manifest ({manifest_room}) - margin ({margin}) = {size} bytes ({size / 1e6:.2f} MB)")
    if size < 4 * 1024 * 1024:
        raise StageError(how + ": too small; carry fewer files or pass --part-size")
    return size, how


def download(spec: str, dest: Path, python_tag: str = "312") -> Path:
    """Download one wheel with pip for the GPU machine (CPython 3.12, manylinux x86_64)."""
    name, _, version = spec.partition("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(dest.glob(pattern))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", python_tag[0] + "." + python_tag[1:], "--implementation", "cp",
                        "--platform", "manylinux_2_28_x86_64", "-d", str(dest), spec], check=True)
        found = sorted(dest.glob(pattern))
    if len(found) != 1:
        raise StageError(f"expected one wheel for {spec} in {dest}, found {[f.name for f in found]}")
    return found[0]


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode or 0o644, _MTIME
    tar.addfile(info, io.BytesIO(data))


def grouped_gemm_only(entry: fatbin.Entry, payload: bytes) -> bool:
    """Whether every kernel of a zstd-compressed cubin is a CUTLASS grouped GEMM.

    In onnxruntime-gpu 1.31.1 those are the 292 sm_90a-only images (44 MB, 12.8 MB packed):
    the mixture-of-experts GEMMs of its MoE/QMoE contrib ops, which rtvoice's graphs (LSTM,
    Conv, MatMul, Gemm, elementwise) never contain. Inflated with the zstd command.
    """
    if entry.kind != fatbin.KIND_ELF or payload[:4] != fatbin.ZSTD_MAGIC:
        return False
    done = subprocess.run(["zstd", "-d", "-c", "-q"], input=payload[:entry.compressed_size], capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise StageError(f"zstd could not inflate the {entry.name} image at offset {entry.offset}")
    kernels = fatbin.cubin_kernels(done.stdout)
    return bool(kernels) and all(GROUPED_GEMM in k for k in kernels)


def blank_provider(data: bytes, arch: int, grouped_gemm: bool = False) -> tuple[bytes, dict[str, Any]]:
    """The provider library with unloadable (and, if asked, unused) device code blanked, checked."""
    if grouped_gemm and not shutil.which("zstd"):
        raise StageError("--blank-grouped-gemm needs the zstd command (apt install zstd)")
    out = bytearray(data)
    offset, size = fatbin.elf_section(out, ".nv_fatbin")
    report = fatbin.blank_unloadable(memoryview(out)[offset:offset + size], arch,
                                     grouped_gemm_only if grouped_gemm else None)
    fatbin.check_blanked(memoryview(data)[offset:offset + size], memoryview(out)[offset:offset + size], arch,
                         report.extra)
    if data[:offset] != out[:offset] or data[offset + size:] != out[offset + size:]:
        raise StageError("bytes outside .nv_fatbin changed while blanking")
    if not report.kept:
        raise StageError(f"no device code in {PROVIDER} loads on sm_{arch}: refusing to blank it all")
    return bytes(out), {"section_offset": offset, "section_size": size, "kept": report.kept,
                        "blanked": report.blanked, "kept_bytes": report.kept_bytes,
                        "blanked_bytes": report.blanked_bytes}


def pack(wheels: list[Path], archive: Path, arch: int | None, preset: int,
         grouped_gemm: bool = False) -> dict[str, Any]:
    """Write the stripped wheels' files as one tar.xz; returns what was dropped and blanked."""
    dropped: dict[str, int] = {}  # folder -> files
    blanked: dict[str, Any] = {}
    filters = [{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2, "preset": preset}]  # x86 code compresses better
    with lzma.open(archive, "wb", format=lzma.FORMAT_XZ, filters=filters) as xz, \
            tarfile.open(fileobj=xz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as z:
                for info in sorted(z.infolist(), key=lambda i: i.filename):
                    if info.is_dir():
                        continue
                    if any(p.match(info.filename) for p in DROP):
                        key = "/".join(info.filename.split("/")[:2])  # onnxruntime/transformers, ...
                        dropped[key] = dropped.get(key, 0) + 1
                        continue
                    data = z.read(info)
                    if info.filename == PROVIDER and arch is not None:
                        data, blanked = blank_provider(data, arch, grouped_gemm)
                    _add(tar, info.filename, data, (info.external_attr >> 16) & 0o777)
    return {"dropped": dropped, "blanked": blanked}


def split(archive: Path, out: Path, part_size: int) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    with archive.open("rb") as f:
        while chunk := f.read(part_size):
            name = f"part-{len(parts) + 1:02d}"
            (out / name).write_bytes(chunk)
            parts.append({"name": name, "size": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
    return parts


def import_check(archive: Path, wheel: Path) -> str:
    """Unpack and import onnxruntime here when the wheel is for this Python; else say why not."""
    tag = re.search(r"-cp(\d+)-", wheel.name)
    here = f"{sys.version_info.major}{sys.version_info.minor}"
    if not tag or tag.group(1) != here:
        return f"import not checked here ({wheel.name} is not for Python {here}; pass a cp{here} --wheel to check)"
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(archive, "r:xz") as t:
            t.extractall(tmp, filter="data")
        code = ("import onnxruntime as o, sys; assert o.__file__.startswith(sys.argv[1]), o.__file__; "
                "print(o.__version__, o.get_available_providers())")
        env = dict(os.environ, PYTHONPATH=tmp)
        done = subprocess.run([sys.executable, "-c", code, tmp], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise StageError(f"the stripped package does not import: {done.stderr.strip().splitlines()[-1:]}")
        return f"stripped package imports here: {done.stdout.strip()}"


def run_calls(out: Path, parts: list[dict[str, Any]]) -> str:
    rel = os.path.relpath(out, ROOT)
    tool = "python3 tools/gpu/ort_stage.py"
    lines = ["The lead's device calls, back to back (a machine idle ~30 s is given back, and with it /tmp):"]
    for k, part in enumerate(parts, 1):
        carry = json.dumps([f"{rel}/{MANIFEST}", f"{rel}/{part['name']}"])
        command = f"{tool} receive {rel}/{part['name']}"
        if rel != OUT_DIR:  # receive reads gpu-stage/manifest.json unless told
            command += f" --manifest {rel}/{MANIFEST}"
        if k == len(parts):
            command += (f" && {tool} install && {tool} check"
                        f" && PYTHONPATH={TARGET} bash tools/gpu/cuda_backend_check.sh")
        lines += [f"call {k}/{len(parts)}: carry {carry}", f"    command: {command}"]
    lines.append("The last call: timeout_s 600; receive+install+check take ~20 s before the check script's stages.")
    lines.append("Each receive prints the parts the machine holds; if one shows an earlier part missing, "
                 "the machine was replaced: carry the missing parts again (receive takes several at once).")
    return "\n".join(lines)


def prepare(args: argparse.Namespace) -> str:
    started = time.monotonic()
    out: Path = args.out
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    part_size, how = (args.part_size, f"part size = {args.part_size} (given)") if args.part_size else \
        default_part_size(args.margin_mib)
    wheel = args.wheel or download(f"onnxruntime-gpu=={args.version}", cache)
    extras = [Path(spec) if spec.endswith(".whl") else download(spec, cache) for spec in args.extra]
    for old in out.glob("part-*"):
        old.unlink()
    archive = cache / "archive.tar.xz"
    packed = pack([wheel, *extras], archive, None if args.no_blank else args.arch, args.preset,
                  args.blank_grouped_gemm)
    checked = import_check(archive, wheel)
    parts = split(archive, out, part_size)
    manifest = {
        "package": wheel.name, "wheel_sha256": sha256_file(wheel), "extras": [e.name for e in extras],
        "arch": None if args.no_blank else args.arch, "part_size": how, **packed,
        "archive": {"size": archive.stat().st_size, "sha256": sha256_file(archive)}, "parts": parts,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    archive.unlink()
    kept = packed["blanked"]
    summary = [how, f"wheel {wheel.name}: {wheel.stat().st_size} bytes; dropped {packed['dropped']}"]
    if kept:
        summary.append(f"fatbin: kept {kept['kept']} ({kept['kept_bytes']} bytes), zeroed {kept['blanked']} "
                       f"({kept['blanked_bytes']} bytes)")
    summary += [checked, f"archive {manifest['archive']['size']} bytes -> {len(parts)} parts in {out} "
                f"({time.monotonic() - started:.0f} s)", run_calls(out, parts)]
    return "\n".join(summary)
