"""rtvoice/engine, the decoder and vocoder layer, imports nothing from the layers that use it.

The synthesizer, pipeline and voice drive an :class:`~rtvoice.engine.protocol.Engine`; an
engine importing them (cuda_engine took ``gate_logit`` from the synthesizer) ties a backend
to one consumer and invites import cycles. What both need lives below them, in
rtvoice/config.py (``DecoderConfig.gate_logit``). Found in review (2026-12-07).
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

ENGINE = Path(__file__).parents[2] / "rtvoice" / "engine"
ABOVE = ("synthesizer", "pipeline", "voice", "batching", "seams", "bench", "cli", "repl", "commands", "server",
         "announce", "playback", "ssml", "script", "text")
"""rtvoice's modules and packages that use the engine (or the text before it), none of which it may import."""


def imported(path: Path) -> set[str]:
    """Absolute names of the rtvoice modules ``path`` imports, at any depth of the file."""
    package = ("rtvoice." + ".".join(path.relative_to(ENGINE.parent).with_suffix("").parts)).rsplit(".", 1)[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names.add(module)
            names |= {f"{module}.{a.name}" for a in node.names}
    return {n for n in names if n.startswith("rtvoice.")}


def test_no_engine_module_imports_a_layer_above_it() -> None:
    files = sorted(ENGINE.rglob("*.py"))
    assert len(files) > 5
    assert "rtvoice.config.VoiceConfig" in imported(ENGINE / "cuda_engine.py")   # the parser resolves ``..``
    wrong = {f"{f.relative_to(ENGINE.parent)}: {name}" for f in files for name in imported(f)
             if name.split(".")[1] in ABOVE}
    assert not wrong, sorted(wrong)


@pytest.mark.parametrize(("threshold", "logit"), [(0.0, -math.inf), (1.0, math.inf), (0.5, 0.0),
                                                  (0.9, math.log(9.0)), (0.1, -math.log(9.0))])
def test_the_gate_threshold_as_a_logit(threshold: float, logit: float) -> None:
    from rtvoice.config import DecoderConfig

    assert DecoderConfig(gate_threshold=threshold).gate_logit == pytest.approx(logit)
    if math.isfinite(logit):   # sigmoid(g) > t exactly when g > logit(t)
        for g in (logit - 1e-3, logit + 1e-3):
            assert (1 / (1 + math.exp(-g)) > threshold) == (g > logit)
