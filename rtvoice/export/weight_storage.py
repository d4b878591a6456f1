"""Float16 *storage* of a graph's weights, undone (the inverse of ``training/fp16_voice.py``).

A voice may store its large weights as float16 initializers (or ``Constant`` nodes), each read
through a ``Cast`` to float32 that carries the weight's old name. Tools that rewrite a graph's
arithmetic, such as onnxconverter-common's float16 converter behind ``rtvoice.export.fp16_graphs``,
refuse such a graph ("already converted to float16"), so they first get the float32 weights back.
Float16 to float32 is exact, so nothing the graph computes changes.
"""

from __future__ import annotations

from typing import Any


def float32_weights(model: Any) -> int:
    """Read float16-stored weights of ``model`` (an onnx.ModelProto, edited in place) back as float32.

    Each ``Cast`` to float32 of a float16 initializer or ``Constant`` becomes a float32
    initializer of the Cast's output name. Returns how many weights were restored; a graph
    without float16 storage is left as it was.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    halves = {i.name: i for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT16}
    constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant"
                 and any(a.name == "value" and a.t.data_type == onnx.TensorProto.FLOAT16 for a in n.attribute)}
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    casts = [n for n in graph.node if n.op_type == "Cast" and n.input[0] in (halves.keys() | constants.keys())
             and users.get(n.input[0]) == 1
             and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in n.attribute)]
    if not casts:
        return 0
    restored = []
    for cast in casts:
        source = cast.input[0]
        if source in halves:
            array = numpy_helper.to_array(halves[source])
        else:
            array = numpy_helper.to_array(next(a.t for a in constants[source].attribute if a.name == "value"))
        restored.append(numpy_helper.from_array(array.astype(np.float32), cast.output[0]))
    sources = {c.input[0] for c in casts}
    dropped = {id(c) for c in casts} | {id(constants[s]) for s in sources if s in constants}
    nodes = [n for n in graph.node if id(n) not in dropped]
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [i for i in graph.initializer if i.name not in sources]
    del graph.initializer[:]
    graph.initializer.extend(kept + restored)
    return len(restored)
