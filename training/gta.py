"""Ground-truth-aligned (teacher-forced) mels from Tacotron 2, as a dataset for WaveGlow.

    python -m training.gta [--checkpoints training/checkpoints] [--data training/data] [--out training/data-gta]

WaveGlow trained on the teacher's mels is then given Tacotron 2's, which are smoother: the
mismatch the Tacotron 2 paper removes by training the vocoder on the acoustic model's own
output, aligned to the real audio by teacher forcing. Each sentence's mel here is Tacotron 2's
postnet output with the teacher's previous frame fed at every step, so it has exactly the
teacher's length and lines up with the teacher's audio sample for sample.

The output folder has ``training.data``'s layout (same shards, audio, ids and held-out split;
only the mels differ), so ``train_waveglow --data training/data-gta`` trains on it unchanged.
The model runs as the runtime runs it: no dropout but the prenet's, whose masks are drawn
from ``--seed`` and each sentence's corpus line, so the same checkpoint and seed write the
same mels, however the sentences are batched. Resumable: finished shards are skipped; a
folder of another checkpoint or seed is refused (or, with ``--overwrite``, written anew).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rtvoice.export.tacotron2 import Tacotron2
from training.data import DATA, MANIFEST, Dataset, save_shard
from training.export_default import load_tacotron2
from training.tacotron2_steps import Dropouts, decoder_steps, prenet_masks, teacher_forced
from training.train_tacotron2 import CHECKPOINTS, GpuData

log = logging.getLogger("training.gta")

NO_DROPOUT = Dropouts(encoder=0.0, postnet=0.0, attention=0.0, decoder=0.0)


def item_masks(model: Tacotron2, index: int, frames: int, seed: int, device: torch.device) -> torch.Tensor:
    """Prenet dropout masks (decoder steps, 2, prenet_dim) of one sentence, drawn from (seed, corpus line) alone.

    So a sentence's GTA mel does not depend on what it was batched with. One mask per
    decoder step: ceil(frames / r).
    """
    p = model.params
    generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + index)
    steps = decoder_steps(frames, p.n_frames_per_step)
    return prenet_masks(steps, 1, p.prenet_dim, p.prenet_dropout, device, generator)[:, 0]


@torch.no_grad()
def gta_mels(model: Tacotron2, data: GpuData, items: np.ndarray, seed: int, batch_size: int) -> list[np.ndarray]:
    """Teacher-forced postnet mels of ``items``, each (frames, n_mel) float16 at the teacher's length."""
    lengths = np.diff(data.mel_off)[items]
    order = np.argsort(lengths, kind="stable")  # similar lengths share a batch: less padding
    out: list[np.ndarray] = [np.zeros(0)] * len(items)
    for start in range(0, len(items), batch_size):
        pick = order[start : start + batch_size]
        batch = data.batch(items[pick])
        frames = [int(n) for n in batch.mel_lengths]
        lines = [int(data.index[items[j]]) for j in pick]
        masks = torch.nn.utils.rnn.pad_sequence(
            [item_masks(model, line, n, seed, data.device) for line, n in zip(lines, frames, strict=True)])
        mel = teacher_forced(model, batch, masks, NO_DROPOUT).mel_postnet
        for row, j in enumerate(pick):
            out[j] = mel[row, :, : frames[row]].T.half().cpu().numpy()
    return out


def make(source: Path, out: Path, checkpoints: Path, seed: int, batch_size: int, device: str,
         overwrite: bool = False) -> dict[str, Any]:
    """Write the GTA dataset of ``source`` into ``out``; returns its manifest.

    ``out`` may hold part of the same dataset (it is finished) or nothing; one of another
    checkpoint or seed is refused, or with ``overwrite`` emptied first.
    """
    model, iteration = load_tacotron2(checkpoints)
    model.to(device)
    manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text())
    manifest["settings"] = {**manifest["settings"], "gta": {"tacotron2_iteration": iteration, "seed": seed}}
    out.mkdir(parents=True, exist_ok=True)
    path = out / MANIFEST
    if path.exists() and json.loads(path.read_text()).get("settings") != manifest["settings"]:
        if not overwrite:
            raise ValueError(f"{out} holds GTA mels of another checkpoint or seed. Hint: pass another --out, "
                             "or --overwrite.")
        log.info("%s held GTA mels of another checkpoint or seed: writing them anew", out)
        path.unlink()
        for stale in out.glob("shard-*.npz"):
            stale.unlink()
    todo = [name for name in manifest["shards"] if not (out / name).exists()]
    log.info("Tacotron 2 iteration %d: %d of %d shards to write into %s", iteration, len(todo),
             len(manifest["shards"]), out)
    start = time.perf_counter()
    for done, name in enumerate(todo, 1):
        shard_data = Dataset.load_shards(source, [name])
        items = np.arange(len(shard_data))
        mels = gta_mels(model, GpuData(shard_data, torch.device(device)), items, seed, batch_size)
        save_shard(out / name, shard_data.index.tolist(), shard_data.split("audio"), mels, shard_data.split("ids"))
        if done % 5 == 0 or done == len(todo):
            log.info("  %d/%d shards, %.0f s", done, len(todo), time.perf_counter() - start)
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.gta", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", type=Path, default=CHECKPOINTS, help="folder holding tacotron2.pt")
    p.add_argument("--data", type=Path, default=DATA, help="the teacher dataset (training.data make)")
    p.add_argument("--out", type=Path, default=DATA.with_name("data-gta"))
    p.add_argument("--seed", type=int, default=0, help="seeds the prenet's dropout masks")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--overwrite", action="store_true",
                   help="rewrite an --out folder that holds the mels of another checkpoint or seed")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    make(args.data, args.out, args.checkpoints, args.seed, args.batch_size, args.device, args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
