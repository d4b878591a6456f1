"""Store a voice folder's ONNX weights as float16, computing in float32 (issue 22's 40 MB budget).

Each float32 initializer of at least ``--min-elements`` values becomes a float16 initializer
followed by a ``Cast`` to float32 that takes its old name, so every node still sees a
float32 tensor and the graph computes exactly as before, only with weights rounded to
float16. ONNX Runtime's CPU provider folds each Cast of a constant into a float32 constant
when the session starts (graph optimization, on by default), so the speed is that of the
float32 graph and the memory at run time is float32's; only the files halve. ::

    python -m training.fp16_voice SRC_DIR OUT_DIR     # copies voice.json, rewrites the graphs

Measured on the CPU: training/README.md, "The natural voice".
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("training.fp16_voice")

MIN_ELEMENTS = 1024
"""Smaller tensors (biases, scalars, shapes) stay float32: they cost nothing and may be exact."""


def convert(src: Path, dst: Path, min_elements: int = MIN_ELEMENTS) -> tuple[int, int]:
    """Rewrite one graph; returns (float32 bytes before, bytes of the new file)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    casts = []
    keep = []
    for init in graph.initializer:
        a = numpy_helper.to_array(init) if init.data_type == onnx.TensorProto.FLOAT else None
        if a is None or a.size < min_elements or not np.all(np.abs(a) <= 65504.0):
            keep.append(init)
            continue
        half = numpy_helper.from_array(a.astype(np.float16), init.name + "__fp16")
        keep.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], name=init.name + "__cast",
                                      to=onnx.TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    for node in graph.node:  # weights the exporter computed (WaveGlow's inverted 1x1 convolutions)
        value = next((a for a in node.attribute if a.name == "value"), None)
        if node.op_type != "Constant" or value is None or value.t.data_type != onnx.TensorProto.FLOAT:
            continue
        a = numpy_helper.to_array(value.t)
        if a.size < min_elements or not np.all(np.abs(a) <= 65504.0):
            continue
        out = node.output[0]
        value.t.CopyFrom(numpy_helper.from_array(a.astype(np.float16), value.t.name))
        node.output[0] = out + "__fp16"
        casts.append(helper.make_node("Cast", [node.output[0]], [out], name=out + "__cast", to=onnx.TensorProto.FLOAT))
    nodes = list(graph.node)
    del graph.node[:]
    constants = [n for n in nodes if n.op_type == "Constant"]
    # Constants, then the casts, then the rest: the graph stays topologically sorted.
    graph.node.extend(constants + casts + [n for n in nodes if n.op_type != "Constant"])
    onnx.checker.check_model(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return src.stat().st_size, dst.stat().st_size


def convert_folder(src: Path, dst: Path, min_elements: int = MIN_ELEMENTS) -> dict[str, tuple[int, int]]:
    """Every ``*.onnx`` of a voice folder, and its other files copied as they are."""
    dst.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for f in sorted(src.iterdir()):
        if f.suffix == ".onnx":
            sizes[f.name] = convert(f, dst / f.name, min_elements)
        elif f.is_file():
            shutil.copyfile(f, dst / f.name)
    return sizes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.fp16_voice", description=__doc__.split("\n\n")[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--min-elements", type=int, default=MIN_ELEMENTS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sizes = convert_folder(args.src, args.dst, args.min_elements)
    for name, (a, b) in sizes.items():
        log.info("  %-18s %6.2f -> %6.2f MB", name, a / 1e6, b / 1e6)
    total = sum(f.stat().st_size for f in args.dst.iterdir() if f.is_file())
    log.info("%s: %.2f MB", args.dst, total / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
