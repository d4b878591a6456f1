#!/usr/bin/env bash
# Land what one GPU stretch sent back: checkpoints into training/checkpoints/, report.tar unpacked.
#
#   bash training/land.sh FILES_AT[/VARIANT] [DEST]
#
# FILES_AT is the folder the device tool returned the files in (a variant's are in a
# subfolder); DEST defaults to training/checkpoints.
set -euo pipefail
src="${1:?usage: training/land.sh FILES_AT[/VARIANT] [DEST]}"
dst="${2:-$(dirname "$0")/checkpoints}"
shopt -s nullglob
pts=("$src"/*.pt "$src"/*.pt.*)
[ ${#pts[@]} -gt 0 ] || { echo "error: no checkpoint in $src" >&2; exit 2; }
for f in "${pts[@]}"; do
  name="$(basename "$f")"
  # A checkpoint split into parts (.pt.part00, ...) must not keep stale parts of an older one.
  rm -f "$dst/${name%%.pt*}.pt" "$dst/${name%%.pt*}".pt.part* 2>/dev/null || true
done
cp "${pts[@]}" "$dst"/
chmod u+w "$dst"/*  # the device tool hands files back read-only
[ ! -f "$src/report.tar" ] || tar -C "$dst" -xf "$src/report.tar"
ls -la "$dst"
