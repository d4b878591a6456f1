"""Building TensorRT plans from a voice's ONNX graphs, with profiles from ``voice.json``.

:func:`build_engine` is pure: ONNX file + profiles + precision -> serialized plan bytes
(the timing cache file is its one side effect). :func:`build_voice_engines` builds
``<graph>.plan`` beside each of a voice's four graphs, with a ``<graph>.plan.json`` cache
key (:mod:`rtvoice.trt.cache`), and skips graphs whose key has not changed.

Precision policy
----------------
``DEFAULT_PRECISION``: the encoder and the decoder step in strict FP32, the postnet and
WaveGlow in FP16. Why:

- The decoder step is autoregressive: each step's mel frame and LSTM/attention state are
  the next step's input, hundreds to thousands of times per sentence (86 steps per second
  of audio). Rounding error compounds through the recurrence and the cumulative
  attention weights, and the stop decision is a threshold on the gate logit
  (``sigmoid > gate_threshold``), so a small drift can move the end of a sentence or make
  the attention skip or repeat. At batch 1 the step is a chain of matrix-*vector*
  products and small element-wise ops, bound by kernel launches and weight reads, not by
  arithmetic, so FP16 or TF32 tensor cores buy little: the H100 anchor in
  ``shared/gpu/README.md`` measured 0.51-0.81 ms per step in FP16 against 0.73 ms in FP32.
  TF32 rounds matrix inputs to 10 mantissa bits, the same as FP16, so "fp32" here means
  TF32 *off*. The one real FP16 gain would be halving the weight bytes each step reads;
  measure it (and the gate/attention agreement over whole sentences) before switching.
- The encoder runs once per sentence (negligible time) and its output is read by every
  decoder step, so it gets the decoder's precision.
- The postnet and WaveGlow are convolution stacks, bound by arithmetic, with no state
  carried between chunks: an error stays inside the chunk it was made in. NVIDIA runs
  WaveGlow in FP16 (DeepLearningExamples); the anchor measured 0.07 s (FP16) against
  0.11 s (FP32) for 7 s of audio.

The policy is a parameter (``build_voice_engines(precision={"decoder_step": "fp16"})``,
``python -m rtvoice.trt.build FOLDER --precision decoder_step=fp16``), and the precision
actually built is part of the cache key. FP16 is requested the TensorRT 10 way, with
``BuilderFlag.FP16`` (weak typing: inputs and outputs stay float32, TensorRT may pick FP16
kernels inside). TensorRT 11 and TensorRT-RTX removed that flag: precision must then be in
the ONNX graph itself (NVIDIA's ModelOpt AutoCast with ``keep_io_types``), which rtvoice
does not do yet, so there an FP16 request builds TF32 and says so (:func:`effective_precision`).

Timing cache
------------
``timing.cache`` in the voice folder is loaded before and saved after every build, so a
rebuild (new profiles, new ONNX) reuses earlier kernel timings. A cache from another GPU
or TensorRT version is refused by TensorRT and replaced. TensorRT-RTX has no timing cache.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

from ..config import GRAPH_NAMES, VoiceConfig
from ..errors import EngineError, RtvoiceError
from . import _tensorrt
from ._tensorrt import TensorRT, new_logger, with_errors
from .cache import NO_GPU, gpu_identity, plan_key, read_key, sidecar_path, write_atomic, write_key
from .profiles import ShapeRange, profiles_for

log = logging.getLogger("rtvoice.trt")

Precision = Literal["fp32", "tf32", "fp16"]
"""``fp32``: strict FP32 (TF32 off). ``tf32``: FP32 with TF32 matrix math allowed (the
TensorRT default). ``fp16``: FP16 kernels allowed as well, where TensorRT supports it."""
PRECISIONS: Final[tuple[str, ...]] = get_args(Precision)

DEFAULT_PRECISION: Final[Mapping[str, Precision]] = MappingProxyType(
    {"encoder": "fp32", "decoder_step": "fp32", "postnet": "fp16", "waveglow": "fp16"})
"""The precision policy; the module docstring says why."""
TIMING_CACHE_FILE: Final = "timing.cache"
REBUILD_HINT: Final = ("Hint: rebuild the engines with `python -m rtvoice.trt.build {folder}` "
                       "(or rerun build_engines.py).")

__all__ = ["DEFAULT_PRECISION", "Precision", "build_engine", "build_voice_engines", "effective_precision",
           "plan_path", "profiles_for"]


def plan_path(folder: Path, graph: str) -> Path:
    """Where the plan of ``graph`` lives: ``<folder>/<graph>.plan``."""
    return folder / f"{graph}.plan"


def effective_precision(trt: TensorRT, requested: Precision) -> Precision:
    """The precision this TensorRT can build when ``requested`` is asked for.

    ``fp16`` needs ``BuilderFlag.FP16`` (TensorRT 10.x); without it (TensorRT 11, RTX) it
    becomes ``tf32``. ``fp32`` needs ``BuilderFlag.TF32`` to switch TF32 off; without it,
    TensorRT's default (TF32 allowed) is all there is, so it becomes ``tf32``.
    """
    if requested == "fp16" and trt.has_builder_flag("FP16"):
        return "fp16"
    if requested == "fp32" and trt.has_builder_flag("TF32"):
        return "fp32"
    return "tf32"


def build_engine(onnx_path: Path, profiles: Mapping[str, ShapeRange], precision: Precision = "fp32",
                 timing_cache_path: Path | None = None, *, allow_rtx: bool = False) -> bytes:
    """Parse an ONNX graph and build a serialized TensorRT plan for one profile.

    Args:
        onnx_path: The ONNX file (external weights, if any, beside it).
        profiles: Input name -> (min, opt, max); every input with a dynamic dimension
            needs one (:func:`rtvoice.trt.profiles.profiles_for`).
        precision: See :data:`Precision`; what this TensorRT cannot do is lowered as in
            :func:`effective_precision` (logged at WARNING).
        timing_cache_path: Load kernel timings from this file if it exists, and save the
            updated cache there after the build. ``None``: no timing cache.
        allow_rtx: Build with TensorRT-RTX when TensorRT is missing (the CPU build check).

    Returns:
        The plan, as bytes.

    Raises:
        EngineError: TensorRT missing, the ONNX file missing or not parsable (every parser
            error is listed, with node name and operator), a profile that does not fit the
            graph, or a failed build (with TensorRT's logged errors).
    """
    trt = _tensorrt.load(allow_rtx=allow_rtx)
    t = trt.module
    if not onnx_path.is_file():
        raise EngineError(f"ONNX graph {onnx_path} does not exist. Hint: rebuild the voice with build_engines.py.")
    logger = new_logger(trt)
    builder = _checked(t.Builder(logger), "trt.Builder()", logger)
    network = _checked(builder.create_network(0), "create_network(0)", logger)  # explicit batch: the default
    # The parser owns the weights the network refers to: it must live until the build is done.
    parser = _checked(t.OnnxParser(network, logger), "trt.OnnxParser()", logger)
    parsed = parser.parse_from_file(str(onnx_path))
    if not parsed or parser.num_errors:
        _raise_parser_errors(onnx_path, parser, logger)
    _check_inputs(network, profiles, onnx_path)
    config = _checked(builder.create_builder_config(), "create_builder_config()", logger)
    _set_precision(trt, config, precision, onnx_path)
    _add_profile(builder, config, profiles, onnx_path, logger)
    cache = _load_timing_cache(trt, config, timing_cache_path, logger)
    log.info("Building %s (%s, %s); this can take minutes", onnx_path.name, effective_precision(trt, precision),
             trt.label)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(with_errors(f"Building {onnx_path.name} failed.", logger) + " Hint: run with -v for "
                          "TensorRT's warnings; check that the profiles in voice.json fit the graph.")
    if cache is not None and timing_cache_path is not None:
        write_atomic(timing_cache_path, memoryview(config.get_timing_cache().serialize()))
    return bytes(memoryview(plan))


def _checked(obj: Any, what: str, logger: _tensorrt.RecordingLogger) -> Any:
    # ``is None``, not falsiness: an empty INetworkDefinition has len() 0.
    if obj is None:
        raise EngineError(with_errors(f"TensorRT {what} failed.", logger))
    return obj


def _raise_parser_errors(onnx_path: Path, parser: Any, logger: _tensorrt.RecordingLogger) -> None:
    """Raise one EngineError listing every parser error (DeepLearningExamples drops them)."""
    lines, first_node = [], None
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        node_name, op = e.node_name(), e.node_operator()
        first_node = first_node or node_name or None
        where = f"node {e.node()}" + (f" {node_name!r}" if node_name else "") + (f" ({op})" if op else "")
        lines.append(f"  {where}: {e.desc()} [{getattr(e.code(), 'name', e.code())}]")
    detail = "\n".join(lines) if lines else "  (the parser recorded no error of its own)"
    message = f"TensorRT's ONNX parser rejected {onnx_path.name} with {len(lines)} error(s):\n{detail}\n"
    raise EngineError(with_errors(message, logger) + " Hint: check the graph's opset and operators against "
                      "TensorRT's ONNX operator support; re-export it with build_engines.py.", tensor=first_node)


def _check_inputs(network: Any, profiles: Mapping[str, ShapeRange], onnx_path: Path) -> None:
    """Every dynamic input has a profile that fits its static dims, and no profile is stray."""
    inputs = {network.get_input(i).name: tuple(network.get_input(i).shape) for i in range(network.num_inputs)}
    hint = "Hint: the voice.json sizes do not match the graph; rebuild the voice with build_engines.py."
    for name in profiles:
        if name not in inputs:
            raise EngineError(f"Profile names {name!r}, which is not an input of {onnx_path.name}. "
                              f"Note: its inputs are {sorted(inputs)}. {hint}", tensor=name)
    for name, dims in inputs.items():
        if name not in profiles:
            if -1 in dims:
                raise EngineError(f"Input {name!r} of {onnx_path.name} has dynamic shape {dims} but no profile. "
                                  f"{hint}", tensor=name)
            continue
        lo, opt, hi = profiles[name]
        for shape in (lo, opt, hi):
            ok = len(shape) == len(dims) and all(d in (-1, s) for d, s in zip(dims, shape, strict=False))
            if not ok:
                raise EngineError(f"Profile shape {shape} of input {name!r} does not fit {onnx_path.name}. "
                                  f"Note: the graph declares {dims} (-1: dynamic). {hint}", tensor=name)
        if not all(a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True)):
            raise EngineError(f"Profile of input {name!r} is not min <= opt <= max: {lo}, {opt}, {hi}. "
                              "Hint: fix profiles in voice.json.", tensor=name)


def _set_precision(trt: TensorRT, config: Any, requested: Precision, onnx_path: Path) -> None:
    flag = trt.module.BuilderFlag
    actual = effective_precision(trt, requested)
    if actual != requested:
        log.warning("%s: %s requested but %s cannot build it (no BuilderFlag.%s); building %s. Note: TensorRT 11 "
                    "and TensorRT-RTX need the precision in the ONNX graph itself (ModelOpt AutoCast).",
                    onnx_path.name, requested, trt.label, "FP16" if requested == "fp16" else "TF32", actual)
    if trt.has_builder_flag("TF32"):
        if actual == "fp32":
            config.clear_flag(flag.TF32)
        else:
            config.set_flag(flag.TF32)
    if actual == "fp16":
        config.set_flag(flag.FP16)  # weak typing: deprecated in TensorRT 10.12+, gone in 11 (handled above)


def _add_profile(builder: Any, config: Any, profiles: Mapping[str, ShapeRange], onnx_path: Path,
                 logger: _tensorrt.RecordingLogger) -> None:
    profile = _checked(builder.create_optimization_profile(), "create_optimization_profile()", logger)
    for name, (lo, opt, hi) in profiles.items():
        profile.set_shape(name, lo, opt, hi)  # returns None; errors go to the logger, checked below
        if tuple(tuple(s) for s in profile.get_shape(name)) != (tuple(lo), tuple(opt), tuple(hi)):
            raise EngineError(with_errors(f"set_shape({name!r}, {lo}, {opt}, {hi}) was not taken for "
                                          f"{onnx_path.name}.", logger), tensor=name)
    index = config.add_optimization_profile(profile)
    if index != 0:
        raise EngineError(with_errors(f"add_optimization_profile for {onnx_path.name} returned {index}, not 0.",
                                      logger) + " Hint: check profiles in voice.json (1 <= min <= opt <= max).")


def _load_timing_cache(trt: TensorRT, config: Any, path: Path | None, logger: _tensorrt.RecordingLogger) -> Any:
    """Attach a timing cache (from ``path`` when usable); ``None`` when none is used."""
    if path is None:
        return None
    if trt.flavor == _tensorrt.RTX:
        log.debug("TensorRT-RTX has no timing cache; %s not used", path)
        return None
    if path.is_file():
        data = path.read_bytes()
        cache = config.create_timing_cache(data)
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            log.debug("Timing cache loaded from %s (%d bytes)", path, len(data))
            return cache
        log.warning("Timing cache %s is from another GPU or TensorRT version, or corrupt; starting a new one. %s",
                    path, " ".join(logger.take_errors()))
    cache = _checked(config.create_timing_cache(b""), "create_timing_cache()", logger)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        raise EngineError(with_errors("set_timing_cache failed for a new, empty cache.", logger))
    return cache


def build_voice_engines(folder: Path, *, precision: Mapping[str, Precision] | None = None, force: bool = False,
                        device_index: int = 0, allow_rtx: bool = False) -> list[Path]:
    """Build (or reuse) ``<graph>.plan`` for the four graphs of a voice folder.

    Args:
        folder: A voice folder (``voice.json`` and the ONNX graphs it names).
        precision: Graph -> precision, overriding :data:`DEFAULT_PRECISION` per graph.
        force: Rebuild even when the cache key is unchanged.
        device_index: The CUDA device to build for (TensorRT builds for the GPU it runs on).
        allow_rtx: Allow the TensorRT-RTX fallback (the CPU build check; such plans do not
            run on the GPUs rtvoice targets and the runtime refuses them).

    Returns:
        The four plan paths, in :data:`rtvoice.config.GRAPH_NAMES` order.

    Raises:
        EngineError: TensorRT missing, no GPU for full TensorRT, a bad precision, or a
            failed build (see :func:`build_engine`).
        VoiceError: The folder or its ``voice.json`` is missing or invalid.
    """
    folder = Path(folder)
    config = VoiceConfig.load(folder)
    policy = _policy(precision)
    trt = _tensorrt.load(allow_rtx=allow_rtx)
    gpu = gpu_identity(device_index)
    if trt.flavor == _tensorrt.FULL:
        if gpu == NO_GPU:
            raise EngineError(f"TensorRT builds engines for the GPU it runs on, and no CUDA GPU is visible here "
                              f"(device {device_index}). Hint: build on the machine that will run the voice.")
        from ..cuda import set_device

        set_device(device_index)
    paths = []
    for graph in GRAPH_NAMES:
        onnx_path = folder / config.graphs[graph]
        profiles = profiles_for(graph, config)
        if not onnx_path.is_file():
            raise EngineError(f"ONNX graph {onnx_path} does not exist. Hint: rebuild the voice with build_engines.py.")
        key = plan_key(onnx_path, trt.label, gpu, effective_precision(trt, policy[graph]), profiles)
        plan = plan_path(folder, graph)
        changed = key.differences(read_key(plan)) if plan.is_file() else ["plan missing"]
        if not changed and not force:
            log.info("%s: up to date", plan.name)
            paths.append(plan)
            continue
        log.info("%s: building (%s)", plan.name, ", ".join(changed) or "forced")
        data = build_engine(onnx_path, profiles, policy[graph], folder / TIMING_CACHE_FILE, allow_rtx=allow_rtx)
        sidecar_path(plan).unlink(missing_ok=True)  # no stale record beside a new plan, even after a crash
        write_atomic(plan, data)
        write_key(plan, key)
        paths.append(plan)
    return paths


def _policy(overrides: Mapping[str, Precision] | None) -> dict[str, Precision]:
    policy = dict(DEFAULT_PRECISION)
    for graph, value in (overrides or {}).items():
        if graph not in policy:
            raise EngineError(f"Unknown graph {graph!r} in precision. Note: the graphs are {', '.join(GRAPH_NAMES)}.")
        if value not in PRECISIONS:
            raise EngineError(f"Unknown precision {value!r} for {graph}. Note: choose one of {', '.join(PRECISIONS)}.")
        policy[graph] = value
    return policy


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rtvoice.trt.build FOLDER``: (re)build a voice's engines; no torch needed."""
    p = argparse.ArgumentParser(prog="python -m rtvoice.trt.build",
                                description="(Re)build a voice's TensorRT engines beside its ONNX graphs.")
    p.add_argument("folder", type=Path, help="voice folder (voice.json + ONNX graphs)")
    p.add_argument("--precision", action="append", default=[], metavar="GRAPH=PRECISION",
                   help=f"override the precision of one graph ({', '.join(PRECISIONS)}); repeatable")
    p.add_argument("--force", action="store_true", help="rebuild even if the engines are up to date")
    p.add_argument("--device", type=int, default=0, help="CUDA device index")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        overrides = dict(item.split("=", 1) for item in args.precision)
        for path in build_voice_engines(args.folder, precision=overrides, force=args.force,
                                        device_index=args.device):
            print(f"TensorRT engine: {path}")
    except ValueError:
        print("error: --precision takes GRAPH=PRECISION, e.g. decoder_step=fp16", file=sys.stderr)
        return 2
    except RtvoiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
