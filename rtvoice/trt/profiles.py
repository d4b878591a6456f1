"""Optimization profiles as data: which input dimension follows which ``voice.json`` range.

Pure Python, no TensorRT. The graphs' tensor names and axes are the export contract of
:mod:`rtvoice.export.onnx_export`; each dynamic axis is tied to one field of
:class:`~rtvoice.config.ProfilesConfig`:

- ``batch``: axis 0 of every input;
- ``text_length``: the encoder's ``text`` and the decoder step's ``memory``,
  ``processed_memory``, ``mask`` and ``attention_weights[_cum]``;
- ``mel_frames``: the postnet's ``mel_frames`` and WaveGlow's ``mel``; WaveGlow's
  ``noise`` length follows it as ``frames * hop_length / n_group``.

Every other dimension is static and comes from the voice's sizes (``config.decoder``,
``config.vocoder``), so a profile always agrees with the graph it is built for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ..config import EngineProfile, VoiceConfig
from ..engine.graphs import GRAPH_INPUTS, STATE_NAMES
from ..errors import EngineError

Shape = tuple[int, ...]
ShapeRange = tuple[Shape, Shape, Shape]
"""(min, opt, max) shapes of one input."""
Profiles = dict[str, ShapeRange]
"""Input name -> (min, opt, max): one optimization profile of one graph."""

NOISE_LENGTH: Final = "noise_length"
"""The one derived axis: WaveGlow's noise length, ``mel_frames * hop_length / n_group``."""

_DIM = int | str


def input_dims(graph: str, config: VoiceConfig) -> dict[str, tuple[_DIM, ...]]:
    """Each input's dimensions: an ``int`` where static, the profile axis name where dynamic.

    Args:
        graph: One of :data:`rtvoice.config.GRAPH_NAMES`.
        config: The voice; its sizes give the static dimensions.

    Returns:
        Input name -> dims, for example ``{"mel_frames": ("batch", "mel_frames", 80)}``.

    Raises:
        EngineError: ``graph`` is not one of the four graphs.
    """
    d = config.decoder
    b, n = "batch", "text_length"
    if graph == "encoder":
        return {"text": (b, n), "text_lengths": (b,)}
    if graph == "decoder_step":
        sizes: dict[str, _DIM] = {
            "attention_hidden": d.attention_rnn_dim, "attention_cell": d.attention_rnn_dim,
            "decoder_hidden": d.decoder_rnn_dim, "decoder_cell": d.decoder_rnn_dim,
            "attention_weights": n, "attention_weights_cum": n, "attention_context": d.encoder_embedding_dim}
        return {"decoder_input": (b, d.step_width),  # the previous step's r frames
                **{name: (b, sizes[name]) for name in STATE_NAMES},
                "memory": (b, n, d.encoder_embedding_dim), "processed_memory": (b, n, d.attention_dim),
                "mask": (b, n), "prenet_masks": (b, 2, d.prenet_dim)}
    if graph == "postnet":
        return {"mel_frames": (b, "mel_frames", d.n_mel_channels)}
    if graph == "waveglow":
        return {"mel": (b, d.n_mel_channels, "mel_frames"), "noise": (b, config.vocoder.n_group, NOISE_LENGTH)}
    raise EngineError(f"Unknown graph {graph!r}. Note: the graphs are {', '.join(GRAPH_INPUTS)}.")


def axis_ranges(config: VoiceConfig) -> dict[str, EngineProfile]:
    """Each profile axis name -> its (min, opt, max), from ``config.profiles``.

    Raises:
        EngineError: A range is not ``1 <= min <= opt <= max``, or ``hop_length`` is not a
            multiple of ``n_group`` (WaveGlow's noise length would not be whole).
    """
    p = config.profiles
    ranges = {"batch": p.batch, "text_length": p.text_length, "mel_frames": p.mel_frames}
    for name, r in ranges.items():
        if not 1 <= r.min <= r.opt <= r.max:
            raise EngineError(
                f"profiles.{name} in voice.json is ({r.min}, {r.opt}, {r.max}). "
                f"Note: it must satisfy 1 <= min <= opt <= max. Hint: fix profiles.{name} in voice.json."
            )
    hop, group = config.audio.hop_length, config.vocoder.n_group
    if hop % group:
        raise EngineError(f"hop_length {hop} is not a multiple of WaveGlow's n_group {group}. "
                          "Note: the noise input has frames * hop_length / n_group samples per group.")
    m = p.mel_frames
    ranges[NOISE_LENGTH] = EngineProfile(m.min * hop // group, m.opt * hop // group, m.max * hop // group)
    return ranges


def profiles_for(graph: str, config: VoiceConfig) -> Profiles:
    """The optimization profile of one graph: every input's (min, opt, max) shape.

    Args:
        graph: One of :data:`rtvoice.config.GRAPH_NAMES`.
        config: The voice; ``config.profiles`` gives the dynamic ranges, its sizes the
            static dimensions.

    Returns:
        Input name -> (min, opt, max), covering every input of the graph.

    Raises:
        EngineError: Unknown graph, or invalid ranges in ``config.profiles``.
    """
    ranges = axis_ranges(config)
    profiles: Profiles = {}
    for name, dims in input_dims(graph, config).items():
        lo = tuple(d if isinstance(d, int) else ranges[d].min for d in dims)
        opt = tuple(d if isinstance(d, int) else ranges[d].opt for d in dims)
        hi = tuple(d if isinstance(d, int) else ranges[d].max for d in dims)
        profiles[name] = (lo, opt, hi)
    return profiles


def dynamic_axes(graph: str) -> dict[str, dict[int, str]]:
    """Input name -> {axis index: profile axis name}, for the dynamic axes only.

    Which axes are dynamic does not depend on the voice's sizes, so no config is needed.
    """
    return {name: {i: d for i, d in enumerate(dims) if isinstance(d, str)}
            for name, dims in input_dims(graph, _SIZES_ONLY).items()}


_SIZES_ONLY: Final = VoiceConfig(name="dynamic-axes")
"""Any voice will do for :func:`dynamic_axes`: only the static sizes differ between voices."""


def _field(axis: str) -> str:
    return "mel_frames" if axis == NOISE_LENGTH else axis


def explain_shape(graph: str, name: str, shape: Shape, allowed: ShapeRange) -> str:
    """The ``Note:`` and ``Hint:`` for a shape outside an engine's profile.

    Args:
        graph: The graph the input belongs to.
        name: The input.
        shape: The shape that was refused.
        allowed: The engine's (min, opt, max) for that input.

    Returns:
        For example ``"Note: the profile allows text_length 1..512. Hint: raise
        profiles.text_length.max in voice.json and rebuild the engines."``.
    """
    lo, _, hi = allowed
    if len(shape) != len(lo):
        return (f"Note: the engine expects {len(lo)} dimensions, from {lo} to {hi}. "
                "Hint: this is a bug in the caller; please report it.")
    axes = dynamic_axes(graph).get(name, {})
    notes: list[str] = []
    hints: list[str] = []
    for i, (got, a, b) in enumerate(zip(shape, lo, hi, strict=True)):
        if a <= got <= b:
            continue
        axis = axes.get(i)
        if axis is None:
            notes.append(f"dimension {i} must be {a}" if a == b else f"dimension {i} must be in {a}..{b}")
            hints.append("the engine was built for other model sizes: rebuild the engines for this voice")
            continue
        notes.append(f"the profile allows {axis} {a}..{b}")
        bound = "max" if got > b else "min"
        verb = "raise" if got > b else "lower"
        via = " (the noise length follows mel_frames)" if axis == NOISE_LENGTH else ""
        hints.append(f"{verb} profiles.{_field(axis)}.{bound} in voice.json{via} and rebuild the engines")
    if not notes:
        return f"Note: the profile allows shapes from {lo} to {hi}."
    return f"Note: {'; '.join(notes)}. Hint: {'; '.join(dict.fromkeys(hints))}."


def _shape_list(shapes: ShapeRange) -> list[list[int]]:
    return [list(s) for s in shapes]


def profiles_to_json(profiles: Mapping[str, ShapeRange]) -> dict[str, list[list[int]]]:
    """Profiles as JSON-ready lists, sorted by input name (the cache key's form)."""
    return {name: _shape_list(profiles[name]) for name in sorted(profiles)}
