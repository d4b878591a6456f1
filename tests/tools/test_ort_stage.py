"""tools/gpu/ort_stage.py: prepare here, then receive and install as on the device machine.

A small synthetic wheel (a real zip) holding a real fatbin library (data/probe_fatbin.so)
where onnxruntime-gpu keeps its CUDA provider goes through the real command line: packed as
real xz, cut into parts, received and installed by ``python3 -S`` (no site-packages, so the
device side provably needs the standard library alone), with corrupt, missing and repeated
parts. The real 256 MB wheel is checked by hand (docs/gpu.md); CI stays small.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
TOOL = ROOT / "tools" / "gpu" / "ort_stage.py"
PROBE = Path(__file__).parent / "data" / "probe_fatbin.so"
sys.path.insert(0, str(ROOT / "tools" / "gpu"))
import fatbin  # noqa: E402  # tools/gpu/fatbin.py
import ort_pack  # noqa: E402  # tools/gpu/ort_pack.py


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o755 if name.endswith(".so") else 0o644) << 16
            z.writestr(info, data)
    return path


def _run(*args: str, cwd: Path, site: bool = True) -> subprocess.CompletedProcess[str]:
    flags = [] if site else ["-S"]  # -S: no site-packages, as bare as the device's standard library
    return subprocess.run([sys.executable, *flags, str(TOOL), *args], cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=120)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gpu-stage/ for a synthetic onnxruntime-gpu wheel plus one extra wheel, in small parts."""
    tmp = tmp_path_factory.mktemp("prep")
    # Incompressible filler, so the archive really spans several parts.
    filler = random.Random(0).randbytes(40_000)
    wheel = _wheel(tmp / "onnxruntime_gpu-9.9.9-py3-none-any.whl", {
        "onnxruntime/__init__.py": b"__version__ = '9.9.9'\n",
        "onnxruntime/capi/libonnxruntime_providers_cuda.so": PROBE.read_bytes(),
        "onnxruntime/capi/libonnxruntime_providers_tensorrt.so": b"\0" * 1000,
        "onnxruntime/capi/libonnxruntime.so.9.9.9": b"\0" * 1000,
        "onnxruntime/capi/blob.bin": filler,
        "onnxruntime/transformers/models/big.py": b"x = 1\n",
        "onnxruntime_gpu-9.9.9.dist-info/METADATA": b"Name: onnxruntime-gpu\nVersion: 9.9.9\n",
    })
    extra = _wheel(tmp / "tinydep-1.0-py3-none-any.whl", {"tinydep/__init__.py": b"VALUE = 7\n"})
    out = tmp / "repo" / "gpu-stage"
    done = _run("prepare", "--wheel", str(wheel), "--extra", str(extra), "--out", str(out), "--part-size", "15000",
                cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "call 1/" in done.stdout and "receive" in done.stdout and "install" in done.stdout
    return out


def _device(prepared: Path, tmp_path: Path) -> Path:
    """A copy of what a device call sees: the repo's tool and the carried gpu-stage/ folder."""
    repo = tmp_path / "repo"
    shutil.copytree(prepared, repo / "gpu-stage")
    return repo


def _args(tmp_path: Path) -> list[str]:
    return ["--stage", str(tmp_path / "stage")]


def test_prepare_strips_blanks_and_writes_a_manifest(prepared: Path) -> None:
    manifest = json.loads((prepared / "manifest.json").read_text())
    parts = manifest["parts"]
    assert len(parts) >= 3 and [p["name"] for p in parts] == [f"part-{i:02d}" for i in range(1, len(parts) + 1)]
    assert all(p["size"] <= 15000 for p in parts)
    assert sum(p["size"] for p in parts) == manifest["archive"]["size"]
    assert manifest["dropped"] == {"onnxruntime/capi": 2, "onnxruntime/transformers": 1}
    assert manifest["blanked"]["kept"] == {"sm_90": 1, "sm_90a": 1, "compute_80": 1}
    assert manifest["blanked"]["blanked"] == {"sm_80": 1, "compute_100": 1}


def test_receive_then_install_round_trip(prepared: Path, tmp_path: Path) -> None:
    repo = _device(prepared, tmp_path)
    names = sorted(p.name for p in (repo / "gpu-stage").glob("part-*"))
    for k, name in enumerate(names, 1):
        done = _run("receive", f"gpu-stage/{name}", *_args(tmp_path), cwd=repo, site=False)
        assert done.returncode == 0, done.stderr
        assert f"have {k}/{len(names)} parts" in done.stdout
        assert not (repo / "gpu-stage" / name).exists()  # moved, not copied
    assert "all there" in done.stdout
    target = tmp_path / "site-ort"
    done = _run("install", *_args(tmp_path), "--target", str(target), cwd=repo, site=False)
    assert done.returncode == 0, done.stderr
    assert f"export PYTHONPATH={target}:$PYTHONPATH" in done.stdout
    assert (target / "onnxruntime" / "__init__.py").read_text() == "__version__ = '9.9.9'\n"
    assert (target / "tinydep" / "__init__.py").is_file()
    assert not (target / "onnxruntime" / "transformers").exists()
    assert not (target / "onnxruntime" / "capi" / "libonnxruntime_providers_tensorrt.so").exists()
    provider = (target / "onnxruntime" / "capi" / "libonnxruntime_providers_cuda.so").read_bytes()
    original = PROBE.read_bytes()
    offset, size = fatbin.elf_section(provider, ".nv_fatbin")
    assert len(provider) == len(original)
    fatbin.check_blanked(original[offset:offset + size], provider[offset:offset + size], 90)
    # idempotent: a second install is a no-op, and so is receiving a part again
    again = _run("install", *_args(tmp_path), "--target", str(target), cwd=repo, site=False)
    assert again.returncode == 0 and "already installed" in again.stdout
    shutil.copy(prepared / names[0], repo / "gpu-stage" / names[0])
    done = _run("receive", f"gpu-stage/{names[0]}", *_args(tmp_path), cwd=repo, site=False)
    assert done.returncode == 0 and f"have {len(names)}/{len(names)} parts" in done.stdout


def test_a_corrupt_part_is_refused_in_one_line_and_harms_nothing(prepared: Path, tmp_path: Path) -> None:
    repo = _device(prepared, tmp_path)
    assert _run("receive", "gpu-stage/part-01", *_args(tmp_path), cwd=repo, site=False).returncode == 0
    bad = repo / "gpu-stage" / "part-02"
    data = bytearray(bad.read_bytes())
    data[100] ^= 0xFF
    bad.write_bytes(bytes(data))
    done = _run("receive", "gpu-stage/part-02", *_args(tmp_path), cwd=repo, site=False)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "part-02 is corrupt" in done.stderr and "carry it again" in done.stderr
    assert not (tmp_path / "stage" / "part-02").exists() and (tmp_path / "stage" / "part-01").is_file()
    # a part spoiled after it was received is caught by install
    staged = tmp_path / "stage" / "part-01"
    spoiled = bytearray(staged.read_bytes())
    spoiled[5] ^= 1
    staged.write_bytes(bytes(spoiled))
    names = sorted(p.name for p in (prepared).glob("part-*"))
    for name in names[1:]:
        shutil.copy(prepared / name, repo / "gpu-stage" / name)
    assert _run("receive", *[f"gpu-stage/{n}" for n in names[1:]], *_args(tmp_path), cwd=repo,
                site=False).returncode == 0
    done = _run("install", *_args(tmp_path), "--target", str(tmp_path / "t"), cwd=repo, site=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "part-01" in done.stderr
    assert not (tmp_path / "t").exists()
    assert not staged.exists()  # dropped, so receive asks for it again
    shutil.copy(prepared / "part-01", repo / "gpu-stage" / "part-01")
    done = _run("receive", "gpu-stage/part-01", *_args(tmp_path), cwd=repo, site=False)
    assert done.returncode == 0 and "all there" in done.stdout
    assert _run("install", *_args(tmp_path), "--target", str(tmp_path / "t"), cwd=repo, site=False).returncode == 0


def test_install_names_the_missing_parts(prepared: Path, tmp_path: Path) -> None:
    repo = _device(prepared, tmp_path)
    assert _run("receive", "gpu-stage/part-01", *_args(tmp_path), cwd=repo, site=False).returncode == 0
    done = _run("install", *_args(tmp_path), "--target", str(tmp_path / "t"), cwd=repo, site=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "missing part-02 part-03" in done.stderr
    not_carried = _run("receive", "gpu-stage/part-09", *_args(tmp_path), cwd=repo, site=False)
    assert not_carried.returncode == 1 and "part-09 is not a part of this manifest" in not_carried.stderr
    (repo / "gpu-stage" / "part-02").unlink()
    gone = _run("receive", "gpu-stage/part-02", *_args(tmp_path), cwd=repo, site=False)
    assert gone.returncode == 1 and "was not carried" in gone.stderr
    (repo / "gpu-stage" / "manifest.json").unlink()
    no_manifest = _run("receive", "gpu-stage/part-03", *_args(tmp_path), cwd=repo, site=False)
    assert no_manifest.returncode == 1 and "manifest.json was not carried" in no_manifest.stderr


def test_a_new_prepare_replaces_the_old_parts(prepared: Path, tmp_path: Path) -> None:
    repo = _device(prepared, tmp_path)
    assert _run("receive", "gpu-stage/part-01", *_args(tmp_path), cwd=repo, site=False).returncode == 0
    manifest = json.loads((repo / "gpu-stage" / "manifest.json").read_text())
    manifest["archive"]["sha256"] = "0" * 64
    (repo / "gpu-stage" / "manifest.json").write_text(json.dumps(manifest))
    shutil.copy(prepared / "part-02", repo / "gpu-stage" / "part-02")
    done = _run("receive", "gpu-stage/part-02", *_args(tmp_path), cwd=repo, site=False)
    assert done.returncode == 0 and "have 1/" in done.stdout  # part-01 of the old prepare was dropped


def test_tree_bytes_counts_what_travels(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("ignored/\n")
    (tmp_path / "tracked.bin").write_bytes(bytes(1000))
    subprocess.run(["git", "-C", str(tmp_path), "add", ".gitignore", "tracked.bin"], check=True)
    (tmp_path / "loose.bin").write_bytes(bytes(500))
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "part").write_bytes(bytes(300))
    assert ort_pack.tree_bytes(tmp_path) == (1000 + len("ignored/\n"), 500)


def test_check_runs_its_graph_and_refuses_an_onnxruntime_from_elsewhere(tmp_path: Path) -> None:
    import onnxruntime

    site = Path(onnxruntime.__file__).parents[1]  # this machine's CPU build stands in for the staged one
    done = _run("check", "--target", str(site), "--provider", "CPUExecutionProvider", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "CPUExecutionProvider ran Softmax" in done.stdout
    elsewhere = _run("check", "--target", str(tmp_path), cwd=ROOT)
    assert elsewhere.returncode == 1 and "not " + str(tmp_path) in elsewhere.stderr


def test_an_archive_that_does_not_unpack_fails_in_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "gpu-stage").mkdir(parents=True)
    blob = random.Random(1).randbytes(3000)  # right sums, but not an xz archive
    halves = [blob[:1500], blob[1500:]]
    parts = [{"name": f"part-0{i + 1}", "size": 1500, "sha256": hashlib.sha256(half).hexdigest()}
             for i, half in enumerate(halves)]
    for part, half in zip(parts, halves, strict=True):
        (repo / "gpu-stage" / str(part["name"])).write_bytes(half)
    manifest = {"parts": parts, "archive": {"size": 3000, "sha256": hashlib.sha256(blob).hexdigest()}}
    (repo / "gpu-stage" / "manifest.json").write_text(json.dumps(manifest))
    assert _run("receive", "gpu-stage/part-01", "gpu-stage/part-02", *_args(tmp_path), cwd=repo,
                site=False).returncode == 0
    target = tmp_path / "out" / "site-ort"
    done = _run("install", *_args(tmp_path), "--target", str(target), cwd=repo, site=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "unpacking into" in done.stderr
    assert list((tmp_path / "out").iterdir()) == []  # no half-unpacked folder, no target


def test_install_links_the_cuda_libraries_where_preload_dlls_looks(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import ort_stage

    venv = tmp_path / "venv-site"
    (venv / "nvidia" / "cu13" / "lib").mkdir(parents=True)
    (venv / "nvidia" / "cu13" / "lib" / "libcublas.so.13").write_bytes(b"")
    site = tmp_path / "site-ort"
    site.mkdir()
    monkeypatch.setattr(sys, "path", [str(tmp_path / "elsewhere"), str(venv)])
    assert ort_stage._link_nvidia(site) == str((venv / "nvidia").resolve())
    assert (site / "nvidia" / "cu13" / "lib" / "libcublas.so.13").is_file()  # onnxruntime/../nvidia/cu13/lib
    monkeypatch.setattr(sys, "path", [str(tmp_path / "elsewhere")])
    assert ort_stage._link_nvidia(tmp_path / "other") is None


@pytest.mark.skipif(not shutil.which("zstd"), reason="the zstd command inflates the images")
def test_grouped_gemm_only_reads_the_kernel_names_of_a_compressed_cubin() -> None:
    nvrtc = pytest.importorskip("cuda.bindings.nvrtc")

    def image(source: bytes) -> tuple[fatbin.Entry, bytes]:
        _, prog = nvrtc.nvrtcCreateProgram(source, b"k.cu", 0, [], [])
        assert nvrtc.nvrtcCompileProgram(prog, 1, [b"--gpu-architecture=sm_90a"])[0] == nvrtc.nvrtcResult.NVRTC_SUCCESS
        cubin = b" " * nvrtc.nvrtcGetCUBINSize(prog)[1]
        nvrtc.nvrtcGetCUBIN(prog, cubin)
        frame = subprocess.run(["zstd", "-c", "-q"], input=cubin, capture_output=True, check=True).stdout
        entry = fatbin.Entry(0, fatbin.KIND_ELF, 64, len(frame) + 3, 90, fatbin.FLAG_ARCH_SPECIFIC, len(frame),
                             len(cubin))
        return entry, frame + bytes(3)

    grouped = b'extern "C" __global__ void GemmUniversal_GroupProblemShape_a(float* x) { x[0] = 1; }\n' \
              b'extern "C" __global__ void GemmUniversal_GroupProblemShape_b(float* x) { x[1] = 2; }'
    mixed = grouped + b'\nextern "C" __global__ void softmax(float* x) { x[2] = 3; }'
    assert ort_pack.grouped_gemm_only(*image(grouped))
    assert not ort_pack.grouped_gemm_only(*image(mixed))  # one other kernel keeps the image
    entry, payload = image(grouped)
    assert not ort_pack.grouped_gemm_only(entry, bytes(len(payload)))  # not zstd: left alone


def test_the_printed_calls_run_as_printed_for_another_out_folder(prepared: Path, tmp_path: Path) -> None:
    """Each printed receive of ``prepare --out gpu-stage-nb`` reads that folder's manifest.

    (A --no-blank fallback kept beside the first, say; receive's default is gpu-stage/'s.)
    """
    repo = tmp_path / "repo"
    shutil.copytree(prepared, repo / "gpu-stage-nb")
    manifest = json.loads((prepared / "manifest.json").read_text())
    plan = ort_pack.run_calls(ort_pack.ROOT / "gpu-stage-nb", manifest["parts"])
    commands = [line.split("command: ", 1)[1] for line in plan.splitlines() if "command: " in line]
    assert len(commands) == len(manifest["parts"])
    for command in commands:
        receive = command.split(" && ")[0].split()
        assert receive[:3] == ["python3", "tools/gpu/ort_stage.py", "receive"], command
        done = _run(*receive[2:], *_args(tmp_path), cwd=repo, site=False)
        assert done.returncode == 0, done.stderr
    assert "all there" in done.stdout
