"""Checkpoints in NVIDIA's layout, in files of at most 15 MiB each.

A checkpoint of model ``NAME`` in ``FOLDER`` is two objects:

- ``NAME.pt``: ``{"state_dict", "config", "iteration", "epoch", "history"}``, the layout of
  DeepLearningExamples' checkpoints (rtvoice.export.checkpoint and ``build_engines.py
  --tacotron2/--waveglow`` read it directly). ``config`` holds the model's hyper-parameters
  under NVIDIA's names plus a ``training`` dict.
- ``NAME.optimizer.pt``: ``{"optimizer", "iteration", "dtype"}``, the AdamW state, by default
  with its moments stored as bfloat16 (half the bytes; restored to float32 on load).

An object whose serialised form exceeds :data:`PART_BYTES` is written as byte parts
``NAME.pt.part00``, ``NAME.pt.part01``, ... instead, which :func:`load` joins. Every file is
written to a temporary name and renamed, and parts left from a larger earlier save are
removed, so a folder always holds one whole checkpoint per name.
"""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("training.checkpoint")

PART_BYTES = 15 * 2**20
"""Largest file written: under the 16 MiB a file may have to be committed or sent back."""


def _parts(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".part[0-9][0-9]"))


def save(obj: dict[str, Any], path: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """torch.save ``obj`` to ``path``, or to ``path.partNN`` pieces when it is too large."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return _write(buffer.getvalue(), path, part_bytes)


def _write(data: bytes, path: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """``data`` (a serialised checkpoint) to ``path`` or its parts, as :func:`save` does."""
    old = [*_parts(path), *([path] if path.exists() else [])]
    if len(data) <= part_bytes:
        targets = [path]
    else:
        targets = [path.with_name(f"{path.name}.part{i:02d}") for i in range(-(-len(data) // part_bytes))]
    for i, target in enumerate(targets):
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data[i * part_bytes : (i + 1) * part_bytes])
        os.replace(tmp, target)
    for stale in set(old) - set(targets):
        stale.unlink()
    return targets


def exists(path: Path) -> bool:
    return path.exists() or bool(_parts(path))


def load(path: Path) -> dict[str, Any]:
    """Read what :func:`save` wrote (weights only: no pickled code runs)."""
    if path.exists():
        data = path.read_bytes()
    else:
        parts = _parts(path)
        if not parts:
            raise FileNotFoundError(f"No checkpoint {path} (nor {path.name}.partNN).")
        data = b"".join(p.read_bytes() for p in parts)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def compress_optimizer(state: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    """Cast the per-parameter moment tensors (not ``step``) to ``dtype``."""
    out = {"param_groups": state["param_groups"], "state": {}}
    for key, per_param in state["state"].items():
        out["state"][key] = {name: (value.to(dtype) if torch.is_tensor(value) and value.is_floating_point()
                                    and name != "step" else value) for name, value in per_param.items()}
    return out


def save_training(folder: Path, name: str, model: dict[str, Any], optimizer: dict[str, Any] | None,
                  optimizer_dtype: str) -> list[Path]:
    """Write ``NAME.pt`` and (unless ``optimizer_dtype`` is "none") ``NAME.optimizer.pt``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = save(model, folder / f"{name}.pt")
    opt_path = folder / f"{name}.optimizer.pt"
    if optimizer is not None and optimizer_dtype != "none":
        dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[optimizer_dtype]
        state = compress_optimizer(optimizer, dtype)
        written += save({"optimizer": state, "iteration": model["iteration"], "dtype": optimizer_dtype}, opt_path)
    else:
        for stale in [*_parts(opt_path), *([opt_path] if opt_path.exists() else [])]:
            stale.unlink()
    return written


def load_training(folder: Path, name: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Read (model checkpoint, optimizer state or None).

    The optimizer state is dropped, with a warning, when it belongs to another iteration
    than the model (an interrupted save).
    """
    model = load(folder / f"{name}.pt")
    opt_path = folder / f"{name}.optimizer.pt"
    if not exists(opt_path):
        return model, None
    opt = load(opt_path)
    if opt.get("iteration") != model.get("iteration"):
        log.warning("%s is from iteration %s but the model from %s; starting the optimizer afresh",
                    opt_path, opt.get("iteration"), model.get("iteration"))
        return model, None
    return model, opt["optimizer"]


def load_resume(folder: Path, name: str, resume: bool) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """What a trainer resumes from: :func:`load_training`'s pair, or ``(None, None)`` for a fresh run.

    A run starts afresh unless ``resume`` (``--resume``) is set and ``folder/NAME.pt`` exists;
    both trainers decide this here, so they cannot come to differ on it.
    """
    return load_training(folder, name) if resume and exists(folder / f"{name}.pt") else (None, None)


def sizes(paths: list[Path]) -> str:
    return ", ".join(f"{p.name} {p.stat().st_size / 2**20:.1f} MiB" for p in paths)


def iteration_of(folder: Path, name: str) -> int:
    """The iteration of ``folder/NAME.pt``, or -1 when there is none."""
    path = folder / f"{name}.pt"
    return int(load(path)["iteration"]) if exists(path) else -1


def save_half(src: Path, name: str, dst: Path) -> list[Path]:
    """Write ``src/NAME.pt`` to ``dst/NAME.pt`` with its float weights as float16 (half the bytes).

    For what a GPU call sends back and carries: a run resumed from it loads the float16 values
    into its float32 parameters (``load_state_dict`` casts), losing only their rounding.
    """
    model = load(src / f"{name}.pt")
    model["state_dict"] = {k: v.half() if torch.is_tensor(v) and v.dtype == torch.float32 else v
                           for k, v in model["state_dict"].items()}
    model["weights_dtype"] = "float16"
    dst.mkdir(parents=True, exist_ok=True)
    return save(model, dst / f"{name}.pt")


class HistoryError(RuntimeError):
    """:func:`from_history` cannot ask git (no repository there, or no git): one line for the CLI."""


class NotInHistoryError(HistoryError):
    """Git history holds no checkpoint of that name there: a mistyped NAME or DIR must not pass for success."""

    def __init__(self, message: str, searched: str) -> None:
        super().__init__(message)
        self.searched = searched
        """The path searched for, relative to the repository's top (its ``.partNN`` parts too)."""


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True)


def _committed(top: Path, commit: str, rel: str) -> bytes | None:
    """``rel`` as ``commit`` holds it, whole or joined from its ``.partNN`` files; None if it holds neither."""
    whole = _git(top, "show", f"{commit}:{rel}")
    if whole.returncode == 0:
        return whole.stdout
    parent = rel.rpartition("/")[0]
    listed = _git(top, "ls-tree", "--name-only", "-z", commit, "--", f"{parent}/" if parent else ".")
    names = sorted(n for n in listed.stdout.decode().split("\0") if re.fullmatch(re.escape(rel) + r"\.part\d\d", n))
    if not names:
        return None
    return b"".join(_git(top, "show", f"{commit}:{n}").stdout for n in names)


def from_history(folder: Path, name: str) -> int:
    """Write the newest ``folder/NAME.pt`` that git history holds, unless ``folder`` has a later one.

    Why: the natural WaveGlow does not fit a GPU call beside the tracked tree and the teacher, so
    it is committed once and untracked in the next commit. It then lives in main's history
    (every clone has it) while the working tree, which each call carries, stays small; a new
    dev machine gets it back with this, ``folder`` made where the clone lacks it. A checkpoint
    committed in ``.partNN`` parts (:func:`save`) is joined. Returns the iteration now in
    ``folder``.

    Raises:
        NotInHistoryError: no commit holds a readable ``NAME.pt`` (or its parts) at ``folder``;
            nothing is written, and a checkpoint already in ``folder`` is left as it is.
        HistoryError: ``folder`` is not in a git repository, or git is not installed.
    """
    folder = folder.resolve()
    path = folder / f"{name}.pt"
    probe = next(p for p in (folder, *folder.parents) if p.is_dir())  # a fresh clone may lack the folder
    try:
        found_top = _git(probe, "rev-parse", "--show-toplevel")
    except FileNotFoundError:
        raise HistoryError("git is not installed: cannot read checkpoints from history") from None
    if found_top.returncode != 0:
        said = found_top.stderr.decode(errors="replace").strip().splitlines()
        raise HistoryError(f"{folder} is not in a git repository: no history to read {name}.pt from"
                           + (f" (git: {said[-1]})" if said else ""))
    top = Path(found_top.stdout.decode().strip())
    rel = path.relative_to(top).as_posix()
    commits = _git(top, "log", "--format=%H", "--", rel, f"{rel}.part[0-9][0-9]").stdout.decode().split()
    for commit in commits:  # newest first; a commit that removed the file has none to show
        data = _committed(top, commit, rel)
        if data is None:
            continue
        try:
            found = int(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)["iteration"])
        except Exception as e:  # e.g. an LFS pointer, or a file that is not a checkpoint
            log.warning("%s at commit %s is not a readable checkpoint (%s); trying an older one",
                        rel, commit[:10], e)
            continue
        here = iteration_of(folder, name)
        if found > here:
            folder.mkdir(parents=True, exist_ok=True)
            _write(data, path)
            log.info("%s: iteration %d from commit %s", path, found, commit[:10])
            return found
        log.info("%s: iteration %d already, history holds %d (commit %s)", path, here, found, commit[:10])
        return here
    here = iteration_of(folder, name)
    kept = f"; {folder} keeps its own at iteration {here}" if here >= 0 else ""
    raise NotInHistoryError(f"git history of {top} holds no readable {rel} (nor {rel}.partNN){kept}", rel)


def main(argv: list[str] | None = None) -> int:
    """``python -m training.checkpoint newest NAME DIR...``: print the DIR holding the latest NAME.

    ``python -m training.checkpoint half NAME SRC DST``: SRC's NAME.pt with float16 weights into DST.

    ``python -m training.checkpoint history NAME DIR``: DIR's newest NAME.pt from git history;
    exit 2 with one ``error:`` line when git cannot be asked or its history holds no NAME.pt there.
    """
    import argparse

    p = argparse.ArgumentParser(prog="python -m training.checkpoint")
    p.add_argument("command", choices=("newest", "half", "history"))
    p.add_argument("name")
    p.add_argument("folders", nargs="+", type=Path)
    args = p.parse_args(argv)
    if args.command == "half":
        if len(args.folders) != 2:
            p.error("half takes NAME SRC DST")
        print(sizes(save_half(args.folders[0], args.name, args.folders[1])))
        return 0
    if args.command == "history":
        if len(args.folders) != 1:
            p.error("history takes NAME DIR")
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        try:
            it = from_history(args.folders[0], args.name)
        except HistoryError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"{args.folders[0]}: {args.name} at iteration {it}")
        return 0
    found = [(iteration_of(f, args.name), -i, f) for i, f in enumerate(args.folders)]
    best = max(found)
    for it, _, folder in found:
        print(f"{folder}: {args.name} at iteration {it}" if it >= 0 else f"{folder}: no {args.name}", file=sys.stderr)
    print(best[2] if best[0] >= 0 else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
