"""Warm start a new, larger model from an old checkpoint's weights, where the sizes allow.

The natural voice (issue 22) grows the decoder's RNNs and WaveGlow's channels, but reads
the same text with the same front end, so the old voice's text encoder (its embedding, its
three convolutions and the BiLSTM: the letter-to-sound rules it learned from espeak-ng) and
the attention's location features still fit. Every tensor whose name and shape match the
new model is copied; the rest keep their fresh initialization. Nothing is reshaped or
sliced: a grown LSTM's gates are laid out by its own size, so a partial copy would mix
them.

    python -m training.warm_start --checkpoint DIR --model tacotron2 --preset natural --out FILE

writes just the matching tensors as float16 (a few MB, carried to the GPU machine, where
``train_tacotron2 --warm-start FILE`` loads them into a run that starts afresh). The old
voice's checkpoint is in git history even after it leaves the tree::

    git show 71579c2:training/checkpoints/tacotron2.pt > /tmp/old/tacotron2.pt
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from torch import nn

from training import checkpoint

log = logging.getLogger("training.warm_start")


def matching(old: dict[str, torch.Tensor], new: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of ``old`` whose name and shape ``new`` has too."""
    return {k: v for k, v in old.items() if k in new and tuple(new[k].shape) == tuple(v.shape)}


def extract(old: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """What ``model`` can take from ``old``, floats stored as float16 (integers as they are)."""
    keep = matching(old, model.state_dict())
    return {k: v.half() if v.is_floating_point() else v for k, v in keep.items()}


def apply(model: nn.Module, path: Path) -> dict[str, int]:
    """Load the matching tensors of ``path`` into ``model`` (as float32); returns what was copied."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    state = saved.get("state_dict", saved)
    own = model.state_dict()
    keep = matching(state, own)
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in keep.items()}, strict=False)
    params = dict(model.named_parameters())
    copied = sum(params[k].numel() for k in keep if k in params)
    total = sum(p.numel() for p in params.values())
    skipped = sorted(set(state) - set(keep))
    log.info("warm start from %s: %d tensors, %.2f M of %.2f M parameters (%.0f%%)%s", path, len(keep), copied / 1e6,
             total / 1e6, 100 * copied / max(total, 1), f"; not fitting: {', '.join(skipped)}" if skipped else "")
    return {"tensors": len(keep), "parameters": copied, "of": total}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.warm_start", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, required=True, help="folder of the old NAME.pt (or its parts)")
    p.add_argument("--model", choices=("tacotron2", "waveglow"), required=True)
    p.add_argument("--preset", required=True, help="the new run's --preset")
    p.add_argument("--frames-per-step", type=int, default=3, help="Tacotron 2: the new run's r")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    old = checkpoint.load(args.checkpoint / f"{args.model}.pt")["state_dict"]
    if args.model == "tacotron2":
        import dataclasses

        from rtvoice.export.tacotron2 import Tacotron2
        from training.train_tacotron2 import PRESETS as T2

        model: nn.Module = Tacotron2(dataclasses.replace(T2[args.preset], n_frames_per_step=args.frames_per_step))
    else:
        from rtvoice.export.checkpoint import fold_weight_norm
        from rtvoice.export.waveglow import WaveGlow
        from training.train_waveglow import PRESETS as WG

        old = fold_weight_norm(old)
        model = WaveGlow(WG[args.preset])
    keep = extract(old, model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": keep, "source": str(args.checkpoint), "preset": args.preset}, args.out)
    n = sum(v.numel() for v in keep.values())
    log.info("%s: %d of %d tensors fit preset %r (%.2f M values), %.1f MB", args.out, len(keep), len(old), args.preset,
             n / 1e6, args.out.stat().st_size / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
