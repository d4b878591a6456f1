"""Stage onnxruntime-gpu onto the device machine in as few ``run`` calls as possible (issue 26).

Why: the GPU machine has only the CPU build of ONNX Runtime and no network, and each device
call carries at most 64 MiB including the repository's tracked files. The onnxruntime-gpu
wheel is 256 MB. ``prepare`` (here) strips it to what the engine measurements use, blanks
the device code no sm_90 driver can load (tools/gpu/fatbin.py), packs it as one tar.xz
and cuts that into parts that each fit one call beside the tree, with a manifest of
SHA-256 sums. On the device, ``receive`` keeps each carried part in /tmp (which lives as
long as the machine is held), ``install`` checks and unpacks them into /tmp/site-ort, and
``check`` proves the CUDA provider runs ONNX Runtime's own kernels there.

The device side (receive, install, check) uses the Python 3.12 standard library only.
Usage: python3 tools/gpu/ort_stage.py {prepare,receive,install,check} --help
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[2]
STAGE: Final = Path("/tmp/rtvoice-stage")
TARGET: Final = Path("/tmp/site-ort")
OUT_DIR: Final = "gpu-stage"
MANIFEST: Final = "manifest.json"
CALL_LIMIT: Final = 64 * 1024 * 1024  # the device tool's working tree limit per call
MARKER: Final = ".ort-stage.json"  # written into the target once an install is complete
_BLOCK: Final = 1 << 20
# rtvoice imports these at load (num2words, anyascii, defusedxml); the GPU image has none of them.
EXTRA_WHEELS: Final = ("num2words==0.5.14", "anyascii==0.3.3", "defusedxml==0.7.1")


class StageError(Exception):
    """A one-line reason the staging step cannot go on; main() prints it and exits 1."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_BLOCK):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
        manifest["parts"], manifest["archive"]  # noqa: B018  # both keys must exist
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StageError(f"manifest {path} unreadable: {e}") from None
    return manifest


def _status(stage: Path, manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(names present with the right size, names missing); sizes only, hashes are for install."""
    have: list[str] = []
    missing: list[str] = []
    for part in manifest["parts"]:
        p = stage / part["name"]
        (have if p.is_file() and p.stat().st_size == part["size"] else missing).append(part["name"])
    return have, missing


def receive(parts: list[Path], manifest_path: Path, stage: Path = STAGE) -> str:
    """Verify carried parts against the manifest and move them into ``stage``; idempotent."""
    if not manifest_path.is_file():
        raise StageError(f"{manifest_path} was not carried (name it in the carry list with the part)")
    manifest = load_manifest(manifest_path)
    stage.mkdir(parents=True, exist_ok=True)
    staged_manifest = stage / MANIFEST
    if staged_manifest.is_file():
        old = load_manifest(staged_manifest)
        if old["archive"]["sha256"] != manifest["archive"]["sha256"]:  # another prepare: start over
            for part in old["parts"]:
                (stage / part["name"]).unlink(missing_ok=True)
    shutil.copyfile(manifest_path, staged_manifest)
    by_name = {p["name"]: p for p in manifest["parts"]}
    for path in parts:
        entry = by_name.get(path.name)
        if entry is None:
            raise StageError(f"{path.name} is not a part of this manifest (parts: {', '.join(by_name)})")
        dest = stage / path.name
        if not path.is_file():
            if dest.is_file() and sha256_file(dest) == entry["sha256"]:
                continue  # received by an earlier call already
            raise StageError(f"{path} was not carried (name it in the run call's carry list)")
        got = sha256_file(path)
        if got != entry["sha256"]:
            raise StageError(f"{path.name} is corrupt: sha256 {got[:12]}... != {entry['sha256'][:12]}... "
                             "(or from another prepare than the manifest); carry it again")
        tmp = dest.with_suffix(".tmp")
        shutil.copyfile(path, tmp)
        tmp.replace(dest)
        path.unlink()
    have, missing = _status(stage, manifest)
    line = f"have {len(have)}/{len(manifest['parts'])} parts in {stage}"
    return line + (f"; still to carry: {' '.join(missing)}" if missing else "; all there: run install")


def install(stage: Path = STAGE, target: Path = TARGET) -> str:
    """Join, verify and unpack the staged archive into ``target``; a repeat is a no-op."""
    manifest = load_manifest(stage / MANIFEST)
    want = manifest["archive"]["sha256"]
    marker = target / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("sha256") == want:
        return f"already installed in {target}\nexport PYTHONPATH={target}:$PYTHONPATH"
    have, missing = _status(stage, manifest)
    if missing:
        raise StageError(f"missing {' '.join(missing)} of {len(manifest['parts'])} parts in {stage}: "
                         "carry and receive them first")
    corrupt = [p["name"] for p in manifest["parts"] if sha256_file(stage / p["name"]) != p["sha256"]]
    for name in corrupt:  # dropped, so receive's status lists them as still to carry
        (stage / name).unlink()
    if corrupt:
        raise StageError(f"{' '.join(corrupt)} in {stage} corrupt (sha256 mismatch), removed: carry and receive again")
    archive = stage / "archive.tar.xz"
    digest = hashlib.sha256()
    with archive.open("wb") as out:
        for part in manifest["parts"]:
            with (stage / part["name"]).open("rb") as f:
                while chunk := f.read(_BLOCK):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != want:
        archive.unlink()
        raise StageError("the joined archive's sha256 does not match the manifest; prepare again")
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    fresh.chmod(0o755)  # like any site-packages folder, not mkdtemp's 0700
    try:
        with tarfile.open(archive, "r:xz") as tar:
            tar.extractall(fresh, filter="data")
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as e:
        shutil.rmtree(fresh, ignore_errors=True)
        raise StageError(f"unpacking into {target.parent} failed: {e}") from None
    link = _link_nvidia(fresh)
    (fresh / MARKER).write_text(json.dumps({"sha256": want, "nvidia": link}))
    if target.exists():
        shutil.rmtree(target)
    fresh.replace(target)
    archive.unlink()
    return (f"installed {manifest.get('package', 'archive')} into {target}"
            f" (CUDA libraries: {link or 'not found beside python; preload_dlls() uses the default paths'})\n"
            f"export PYTHONPATH={target}:$PYTHONPATH")


def _link_nvidia(site: Path) -> str | None:
    """Point ``site/nvidia`` at the nvidia-* wheels' folder of this Python.

    onnxruntime.preload_dlls() looks for nvidia/cu13/lib and nvidia/cudnn/lib beside the
    onnxruntime package, which here is the staged folder, not the venv that holds torch's
    CUDA libraries.
    """
    for entry in sys.path:
        candidate = Path(entry or ".") / "nvidia"
        if candidate.is_dir() and any(candidate.glob("*/lib/libcublas.so*")):
            (site / "nvidia").symlink_to(candidate.resolve(), target_is_directory=True)
            return str(candidate.resolve())
    return None


CHECK_SCRIPT: Final = r"""
import sys, numpy as np, onnxruntime as ort
from onnx import TensorProto, helper
target, provider = sys.argv[1], sys.argv[2]
if not ort.__file__.startswith(target):
    sys.exit(f"ort_stage check: onnxruntime came from {ort.__file__}, not {target}: install first")
print("onnxruntime", ort.__version__, ort.__file__, ort.get_available_providers(), flush=True)
if provider == "CUDAExecutionProvider":
    ort.preload_dlls()  # the CUDA libraries of the nvidia-* wheels (install links them beside onnxruntime)
F, H = TensorProto.FLOAT, TensorProto.FLOAT16
nodes = [helper.make_node("Softmax", ["x"], ["s"], axis=-1), helper.make_node("Tanh", ["x"], ["t"]),
         helper.make_node("Sigmoid", ["t"], ["g"]), helper.make_node("Mul", ["s", "g"], ["m"]),
         helper.make_node("Transpose", ["m"], ["mt"], perm=[1, 0]), helper.make_node("Cast", ["mt"], ["h"], to=H),
         helper.make_node("Cast", ["h"], ["c"], to=F), helper.make_node("ReduceSum", ["c", "axes"], ["y"], keepdims=0)]
graph = helper.make_graph(nodes, "probe", [helper.make_tensor_value_info("x", F, [64, 257])],
                          [helper.make_tensor_value_info("y", F, [257])],
                          [helper.make_tensor("axes", TensorProto.INT64, [1], [1])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()
x = np.random.default_rng(0).standard_normal((64, 257)).astype(np.float32)
so = ort.SessionOptions()
if provider != "CPUExecutionProvider":
    so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")  # every node on the GPU, or an error
try:
    tested = ort.InferenceSession(model, so, providers=[provider])
    got = tested.run(None, {"x": x})[0]
except Exception as e:  # one line: the provider did not load, or a kernel had no sm_90 image
    sys.exit(f"ort_stage check: {provider} failed: {str(e).strip().splitlines()[-1]}")
want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
err = float(np.abs(got - want).max())
print(f"{provider} ran Softmax/Tanh/Sigmoid/Mul/Transpose/Cast/ReduceSum: max |it - cpu| = {err:.2e}")
sys.exit(0 if err < 1e-2 else f"ort_stage check: {provider} differs from the CPU provider by {err:.2e}")
"""


def check(target: Path = TARGET, provider: str = "CUDAExecutionProvider", python: str = sys.executable) -> int:
    """Run a small graph of ONNX Runtime's own CUDA kernels from the staged package (device only).

    Every node must run on ``provider`` (no CPU fallback) and match the CPU provider. These
    kernels come from the blanked fatbin, so on the device this is what proves the driver
    still finds its sm_90 code; it needs numpy and onnx, which the GPU image has.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")])))
    return subprocess.run([python, "-c", CHECK_SCRIPT, str(target), provider], env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="here: build gpu-stage/ (parts + manifest) and print the run calls")
    p.add_argument("--wheel", type=Path, help="a downloaded onnxruntime-gpu wheel (default: pip download it)")
    p.add_argument("--version", default="1.31.1")
    p.add_argument("--out", type=Path, default=ROOT / OUT_DIR)
    p.add_argument("--part-size", type=int, help="bytes per part (default: what fits one call beside the tree)")
    p.add_argument("--margin-mib", type=float, default=2.0, help="room left per call for the tree to grow")
    p.add_argument("--arch", type=int, default=90, help="the device's compute capability x10 (H100/H200: 90)")
    p.add_argument("--no-blank", action="store_true", help="fallback: keep every architecture's device code")
    p.add_argument("--blank-grouped-gemm", action="store_true",
                   help="also blank the sm_90a CUTLASS grouped GEMMs (ORT's MoE ops; needs zstd): 2 parts, not 3")
    p.add_argument("--preset", type=int, default=9, help="xz preset (9 = 64 MiB dictionary)")
    p.add_argument("--extra", nargs="*", default=list(EXTRA_WHEELS),
                   help="pure-Python wheels rtvoice needs that the GPU machine lacks")
    r = sub.add_parser("receive", help="device: verify carried parts and move them into /tmp/rtvoice-stage")
    r.add_argument("parts", nargs="+", type=Path)
    r.add_argument("--manifest", type=Path, default=Path(OUT_DIR) / MANIFEST)
    r.add_argument("--stage", type=Path, default=STAGE)
    i = sub.add_parser("install", help="device: join, verify and unpack into /tmp/site-ort")
    i.add_argument("--stage", type=Path, default=STAGE)
    i.add_argument("--target", type=Path, default=TARGET)
    c = sub.add_parser("check", help="device: a graph of ORT's own CUDA kernels against its CPU provider")
    c.add_argument("--target", type=Path, default=TARGET)
    c.add_argument("--provider", default="CUDAExecutionProvider")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "prepare":
            from ort_pack import prepare  # tools/gpu/ort_pack.py: the CPU-side half

            print(prepare(args))
        elif args.cmd == "receive":
            print(receive(args.parts, args.manifest, args.stage))
        elif args.cmd == "install":
            print(install(args.stage, args.target))
        else:
            return check(args.target, args.provider)
    except (StageError, OSError) as e:  # OSError: a full disk, an unreadable carried file
        print(f"ort_stage {args.cmd}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import ort_stage  # one module object, so ort_pack raises the StageError that main() catches

    sys.exit(ort_stage.main())
