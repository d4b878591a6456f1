"""Will a GPU call fit? The bytes it carries: tracked files, untracked ones git does not ignore, and ``carry``.

A call carries the working tree as it is (tracked files and untracked files that git does not
ignore) plus the ignored paths named in its ``carry``, 64 MiB in all::

    python -m training.carry_size training/carry/wheels training/carry/teacher training/carry/warm

prints each part, the total and what is left; exits 1 when over. ``--without PATH`` counts
the tree as if PATH (a tracked folder, e.g. training/checkpoints) had left it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

LIMIT = 64 * 2**20
ROOT = Path(__file__).resolve().parents[1]


def tree_files(root: Path = ROOT) -> list[Path]:
    """What travels without being named: tracked files, and untracked ones that git does not ignore."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, check=True).stdout
    return [root / p for p in out.decode().split("\0") if p and (root / p).is_file()]


def size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.carry_size", description=__doc__.split("\n\n")[0])
    p.add_argument("carry", nargs="*", type=Path, help="the call's carry paths, relative to the repository root")
    p.add_argument("--without", type=Path, action="append", default=[], help="a tree folder that leaves first")
    args = p.parse_args(argv)
    gone = [(ROOT / w).resolve() for w in args.without]
    files = [f for f in tree_files() if not any(f.resolve().is_relative_to(g) for g in gone)]
    tree = sum(f.stat().st_size for f in files)
    parts = {str(c): size(ROOT / c) for c in args.carry}
    total = tree + sum(parts.values())
    print(f"{'working tree (tracked + untracked, not ignored)':52s} {tree / 1e6:7.2f} MB"
          + (f"  (without {', '.join(map(str, args.without))})" if args.without else ""))
    for name, n in parts.items():
        print(f"{'carry ' + name:52s} {n / 1e6:7.2f} MB")
    print(f"{'total':52s} {total / 1e6:7.2f} MB of {LIMIT / 1e6:.2f} MB (64 MiB): "
          f"{(LIMIT - total) / 1e6:+.2f} MB {'left' if total <= LIMIT else 'OVER'}")
    return 0 if total <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
