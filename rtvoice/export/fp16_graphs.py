"""fp16 ONNX graphs for the encoder, postnet and WaveGlow (issue 26, part 2): tensor cores on a GPU.

Unlike ``training/fp16_voice.py`` (fp16 *storage*, fp32 arithmetic), these graphs compute
in float16: every float tensor inside the graph is float16, while the graph's inputs and
outputs stay float32 (a Cast at each edge), so the engines, their buffers and the decoder
step read and write exactly what they did. Converted by onnxconverter-common's ``float16``
(Microsoft's converter made for this), with a few ops kept float32:

- its default block list (ops with no float16 kernels or known to overflow), and
- ``Where`` in the encoder: the converter leaves the padding mask's ``Where`` with one
  float32 input, which ONNX Runtime refuses (MatMul bound to float and float16).

The decoder step stays float32 (the ``cuda`` backend packs its own fp16 weights, and an
autoregressive loop carries every rounding error forward). ::

    python -m rtvoice.export.fp16_graphs SRC_VOICE OUT_VOICE [--graphs postnet waveglow]

Parity (tests/export/test_fp16_graphs.py) and the measurements: docs/gpu.md, "fp16 graphs".
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import RtvoiceError, VoiceError
from .weight_storage import float32_weights

log = logging.getLogger("rtvoice.build")

GRAPHS = ("encoder", "postnet", "waveglow")
"""The graphs that may be converted; decoder_step never is."""

DEFAULT_GRAPHS = ("postnet", "waveglow")
"""Converted unless asked otherwise. The encoder is not: its fp16 rounding (memory max error
5e-4) steers the autoregressive decoder onto another path on some sentences (the default
voice: 12.2 dB SNR against fp32 on one of two test sentences, 60-67 dB on the other), and it
runs once per sentence, so fp16 gains it little."""

KEEP_FP32: dict[str, tuple[str, ...]] = {"encoder": ("Where",), "postnet": (), "waveglow": ()}
"""Ops kept float32 per graph, beyond the converter's default block list (see the module docstring)."""


def convert_model(model: Any, graph: str) -> Any:
    """``model`` (an onnx.ModelProto of ``graph``) computing in float16, with float32 inputs and outputs."""
    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise RtvoiceError("fp16 graphs need onnxconverter-common. Hint: pip install '.[build]'") from exc
    restored = float32_weights(model)  # a voice that stores its weights as float16 (training/fp16_voice.py)
    if restored:
        log.info("%s: %d float16-stored weights read back as float32 first", graph, restored)
    blocked = list(float16.DEFAULT_OP_BLOCK_LIST) + list(KEEP_FP32[graph])
    with warnings.catch_warnings(record=True) as caught:  # one warning per tiny weight rounded up to 1e-7
        warnings.simplefilter("always")
        converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=blocked)
    if caught:
        log.info("%s: %d values outside float16's range were clipped (smallest kept: 1e-7)", graph, len(caught))
    _float32_outputs(converted)
    return converted


def _float32_outputs(model: Any) -> None:
    """Cast any output the converter left float16 back to float32 (the encoder's ``memory``, through ``Where``)."""
    import onnx
    from onnx import helper

    graph = model.graph
    for output in graph.output:
        if output.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16:
            continue
        inner = output.name + "__fp16"
        for node in graph.node:
            node.input[:] = [inner if name == output.name else name for name in node.input]
            node.output[:] = [inner if name == output.name else name for name in node.output]
        graph.node.append(helper.make_node("Cast", [inner], [output.name], name=output.name + "__to_fp32",
                                           to=onnx.TensorProto.FLOAT))
        output.type.tensor_type.elem_type = onnx.TensorProto.FLOAT


def convert_voice(src: Path, dst: Path, graphs: Sequence[str] = DEFAULT_GRAPHS) -> dict[str, tuple[int, int]]:
    """Copy voice folder ``src`` to ``dst`` with ``graphs`` in float16; returns {graph: (bytes before, after)}.

    voice.json's ``source`` gains ``fp16_graphs`` (which graphs), so a voice says what it is.
    """
    import onnx

    unknown = sorted(set(graphs) - set(GRAPHS))
    if unknown:
        raise VoiceError(f"cannot make {', '.join(unknown)} fp16; choose from {', '.join(GRAPHS)}.")
    config_path = src / "voice.json"
    if not config_path.is_file():
        raise VoiceError(f"{src} is not a voice folder (no voice.json).")
    if dst.resolve() == src.resolve():
        raise VoiceError("the fp16 voice must go to another folder than its source.")
    config = json.loads(config_path.read_text())
    dst.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, file in config["graphs"].items():
        if name in graphs:
            model = convert_model(onnx.load(str(src / file)), name)
            onnx.save(model, str(dst / file))
            sizes[name] = ((src / file).stat().st_size, (dst / file).stat().st_size)
            log.info("%s: fp16, %.1f -> %.1f MB", name, sizes[name][0] / 1e6, sizes[name][1] / 1e6)
        else:
            shutil.copyfile(src / file, dst / file)
    config.setdefault("source", {})["fp16_graphs"] = sorted(graphs)
    (dst / "voice.json").write_text(json.dumps(config, indent=2) + "\n")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rtvoice.export.fp16_graphs",
                                description="Copy a voice folder with its postnet and WaveGlow (and, if asked, "
                                            "its encoder) computing in fp16 (inputs and outputs stay fp32).")
    p.add_argument("src", type=Path, help="voice folder to read")
    p.add_argument("out", type=Path, help="voice folder to write")
    p.add_argument("--graphs", nargs="+", choices=GRAPHS, default=list(DEFAULT_GRAPHS),
                   help="graphs to convert (default: postnet and waveglow; the encoder's fp16 changes the "
                        "decoder's path on some sentences)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        convert_voice(args.src, args.out, args.graphs)
    except RtvoiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
