"""When a plan is current: the cache key in ``<graph>.plan.json`` beside each plan.

A TensorRT plan is valid only for the exact ONNX graph, TensorRT version, GPU model and
build settings it was built with. Each plan gets a small JSON sidecar holding that key:

- ``onnx_sha256``: the SHA-256 of the ONNX file the plan was built from;
- ``tensorrt``: flavor and version, ``"tensorrt 10.13.3.9"``;
- ``gpu``: ``"<name> (sm_<major><minor>)"`` of the build device, or ``"none"``;
- ``precision``: the precision actually built (see :mod:`rtvoice.trt.build`);
- ``profiles``: the optimization profile, input name -> [min, opt, max].

The build skips a graph whose sidecar holds the key it would build with and rebuilds it
when any field differs; the runtime refuses a plan whose sidecar does not match the voice
folder and device it is opened for. Pure Python, no TensorRT; the GPU is asked through
:mod:`rtvoice.cuda` only by :func:`gpu_identity`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Final

from ..errors import BackendError
from .profiles import ShapeRange, profiles_to_json

log = logging.getLogger("rtvoice.trt")

KEY_FORMAT: Final = 1
"""Version of the sidecar layout; a sidecar of another format counts as absent."""
NO_GPU: Final = "none"


@dataclass(frozen=True)
class PlanKey:
    """Everything a built plan depends on; equal keys mean the plan can be reused."""

    onnx_sha256: str
    tensorrt: str
    gpu: str
    precision: str
    profiles: dict[str, list[list[int]]]

    def to_json(self) -> dict[str, Any]:
        """The sidecar's content."""
        return {"format": KEY_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any) -> PlanKey | None:
        """Parse a sidecar's content; ``None`` if it is not a sidecar of this format."""
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict) or data.get("format") != KEY_FORMAT or set(data) != {"format", *names}:
            return None
        if not all(isinstance(data[n], str) for n in names[:-1]) or not isinstance(data["profiles"], dict):
            return None
        return cls(**{n: data[n] for n in names})

    def differences(self, other: PlanKey | None, *, ignore: tuple[str, ...] = ()) -> list[str]:
        """The fields in which ``other`` differs from this key (all of them if ``other`` is None)."""
        names = [f.name for f in fields(self) if f.name not in ignore]
        if other is None:
            return names
        return [n for n in names if getattr(self, n) != getattr(other, n)]


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    """The hex SHA-256 of a file, read in chunks (WaveGlow graphs are hundreds of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def gpu_identity(device_index: int = 0) -> str:
    """The GPU a plan is built for or opened on: ``"NVIDIA H100 80GB HBM3 (sm_90)"``.

    Args:
        device_index: The CUDA device.

    Returns:
        Name and compute capability, or :data:`NO_GPU` (``"none"``) when cuda-python is
        missing or no GPU answers (the TensorRT-RTX build check on a CPU).
    """
    from ..cuda import get_device_info, is_available

    if not is_available():
        return NO_GPU
    try:
        info = get_device_info(device_index)
    except BackendError as exc:  # CudaError: no such device
        log.debug("GPU %d not usable for the cache key: %s", device_index, exc)
        return NO_GPU
    major, minor = info.compute_capability
    return f"{info.name} (sm_{major}{minor})"


def plan_key(onnx_path: Path, tensorrt: str, gpu: str, precision: str,
             profiles: Mapping[str, ShapeRange]) -> PlanKey:
    """The key of a plan built from ``onnx_path`` with these settings.

    Args:
        onnx_path: The ONNX graph (hashed here).
        tensorrt: :attr:`rtvoice.trt._tensorrt.TensorRT.label`.
        gpu: :func:`gpu_identity` of the build device.
        precision: The precision actually built.
        profiles: The optimization profile.
    """
    return PlanKey(sha256_file(onnx_path), tensorrt, gpu, precision, profiles_to_json(profiles))


def sidecar_path(plan: Path) -> Path:
    """``encoder.plan`` -> ``encoder.plan.json``."""
    return plan.with_name(plan.name + ".json")


def read_key(plan: Path) -> PlanKey | None:
    """The key stored beside ``plan``; ``None`` if missing, unreadable or of another format."""
    path = sidecar_path(plan)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("Ignoring unreadable engine record %s: %s", path, exc)
        return None
    key = PlanKey.from_json(data)
    if key is None:
        log.warning("Ignoring engine record %s: not an rtvoice plan key (format %d)", path, KEY_FORMAT)
    return key


def write_key(plan: Path, key: PlanKey) -> Path:
    """Store ``key`` beside ``plan`` (atomically: a crash leaves the old file or the new one)."""
    path = sidecar_path(plan)
    write_atomic(path, _dumps(key.to_json()).encode())
    return path


def _dumps(data: dict[str, Any]) -> str:
    """JSON with one line per field and per profile (shapes stay on their line)."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in data.items() if k != "profiles"]
    shapes = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in data["profiles"].items()]
    profiles = "{\n" + ",\n".join(shapes) + "\n  }" if shapes else "{}"
    return "{\n" + ",\n".join([*lines, f'  "profiles": {profiles}']) + "\n}\n"


def write_atomic(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
