"""A fake ``tensorrt`` module for the CPU tests of rtvoice.trt.

The fake implements only the runtime calls :class:`rtvoice.trt.runner.TrtRunner` makes
(Runtime, ICudaEngine, IExecutionContext, ILogger) with TensorRT's documented return
conventions: ``None`` for a failed deserialize, ``False`` for a refused shape or
address, and the reason sent to the logger. It counts calls, so tests can check that a
shape or address is set only when it changed.
"""

from __future__ import annotations

import enum
import types
from dataclasses import dataclass, field
from typing import Any

from rtvoice.config import VoiceConfig
from rtvoice.engine.graphs import GRAPH_INPUTS, GRAPH_OUTPUTS
from rtvoice.trt import _tensorrt
from rtvoice.trt.profiles import profiles_for


class Severity(enum.Enum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT32 = 3
    BOOL = 4
    INT64 = 9


class FakeILogger:
    Severity = Severity

    def __init__(self) -> None:
        pass


@dataclass
class Calls:
    """What the fake was asked, in order."""

    shapes: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    addresses: list[tuple[str, int]] = field(default_factory=list)
    executes: list[int] = field(default_factory=list)
    executed_with: list[dict[str, int]] = field(default_factory=list)
    """The addresses set on the executing context, per execute."""


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.engine.calls.shapes.append((name, tuple(shape)))
        lo, _, hi = self.engine.limits[name]
        if len(shape) != len(lo) or not all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
            self.engine.logger.log(Severity.ERROR, f"IExecutionContext::setInputShape: {name} out of profile")
            return False
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.engine.calls.addresses.append((name, ptr))
        if ptr == 0:
            return False
        self.addresses[name] = ptr
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.engine.output_shape(name, self.shapes)

    def execute_async_v3(self, handle: int) -> bool:
        self.engine.calls.executes.append(handle)
        self.engine.calls.executed_with.append(dict(self.addresses))
        if self.engine.fail_execute:
            self.engine.logger.log(Severity.ERROR, "enqueueV3: illegal memory access")
            return False
        return True


class FakeEngine:
    """An engine for one graph, with the IO names and profile rtvoice builds it with."""

    def __init__(self, graph: str, logger: Any, *, rename: dict[str, str] | None = None) -> None:
        self.graph = graph
        self.logger = logger
        self.calls = Calls()
        self.fail_execute = False
        self.limits = dict(profiles_for(graph, VoiceConfig(name="fake")))
        names = [*GRAPH_INPUTS[graph], *GRAPH_OUTPUTS[graph]]
        self.names = [(rename or {}).get(n, n) for n in names]
        self.inputs = set(GRAPH_INPUTS[graph]) & set(self.names)
        self.contexts: list[FakeContext] = []

    @property
    def num_io_tensors(self) -> int:
        return len(self.names)

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if name in self.inputs else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> DataType:
        return {"text": DataType.INT64, "text_lengths": DataType.INT64, "mask": DataType.BOOL}.get(name, DataType.FLOAT)

    def get_tensor_profile_shape(self, name: str, index: int) -> tuple[tuple[int, ...], ...]:
        assert index == 0
        return self.limits[name]

    def create_execution_context(self) -> FakeContext:
        context = FakeContext(self)
        self.contexts.append(context)
        return context

    def output_shape(self, name: str, shapes: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
        if self.graph == "postnet" and name == "mel_postnet":
            b, t, m = shapes["mel_frames"]
            return (b, m, t)
        if self.graph == "decoder_step":
            batch = shapes["decoder_input"][0]
            width = shapes["decoder_input"][1]  # r frames of 80: r gate logits
            sizes = {"mel_frame": (batch, width), "gate": (batch, width // 80)}
            return sizes.get(name) or shapes[name.removeprefix("next_")]
        return (-1,)  # not modelled: TensorRT's "cannot infer"


class FakeRuntime:
    def __init__(self, fake: FakeTensorRT, logger: Any) -> None:
        self.fake = fake
        self.logger = logger

    def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
        if not data.startswith(b"plan:"):
            self.logger.log(Severity.ERROR, "Serialization assertion: magic tag does not match")
            return None
        graph = data[len(b"plan:"):].decode()
        engine = FakeEngine(graph, self.logger, rename=self.fake.rename)
        self.fake.engines.append(engine)
        return engine


class FakeTensorRT:
    """Holds the fake module and what was made through it."""

    def __init__(self) -> None:
        self.engines: list[FakeEngine] = []
        self.rename: dict[str, str] = {}
        module = types.ModuleType("fake_tensorrt")
        module.ILogger = FakeILogger  # type: ignore[attr-defined]
        module.TensorIOMode = TensorIOMode  # type: ignore[attr-defined]
        module.Runtime = lambda logger: FakeRuntime(self, logger)  # type: ignore[attr-defined]
        module.BuilderFlag = types.SimpleNamespace(FP16=1, TF32=2)  # type: ignore[attr-defined]
        module.__version__ = "10.99.0"  # type: ignore[attr-defined]
        self.module = module
        self.version = "10.99.0"

    def load(self, *, allow_rtx: bool = False) -> _tensorrt.TensorRT:
        return _tensorrt.TensorRT(self.module, _tensorrt.FULL, self.version)


@dataclass
class FakeStream:
    """Stands in for rtvoice.cuda.Stream: the runner only reads ``handle``."""

    handle: int = 0x5EED
