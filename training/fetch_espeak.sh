#!/usr/bin/env bash
# Make training/carry/: a relocatable espeak-ng built from Debian's packages (unpacked with
# dpkg -x, no root needed) plus the two pure-Python wheels rtvoice.text imports, for a
# machine with no network. Run it here, where apt-get and pip reach their registries:
#
#   bash training/fetch_espeak.sh [OUT]      # OUT defaults to training/carry
#
# OUT/espeak.tar.xz unpacks to espeak/, whose wrapper espeak/espeak-ng runs from wherever
# it lies (training/setup_machine.sh unpacks it). It holds espeak-ng, libespeak-ng and every
# shared library they load except glibc's own (libc, libm, ld-linux): it needs x86-64 Linux
# with glibc 2.34 or newer. espeak-ng-data is pruned to English. The wrapper sets
# LD_LIBRARY_PATH and ESPEAK_DATA_PATH for espeak-ng alone, so these Debian 12 libraries
# never shadow the caller's own (Python's, torch's).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/carry}"
# espeak-ng's dependency closure (apt-cache depends --recurse espeak-ng) less glibc, the gcc
# runtime, data-only packages and libelogind0 (the alternative to libsystemd0).
packages=(
  espeak-ng espeak-ng-data libespeak-ng1 libpcaudio0 libsonic0
  libasound2 libpulse0 libasyncns0 libbsd0 libcap2 libdbus-1-3 libflac12 libgcrypt20
  libgpg-error0 liblz4-1 liblzma5 libmd0 libmp3lame0 libmpg123-0 libogg0 libopus0
  libsndfile1 libsystemd0 libvorbis0a libvorbisenc2 libx11-6 libx11-xcb1 libxau6 libxcb1
  libxdmcp6 libzstd1
)
wheels=(anyascii==0.3.3 num2words==0.5.14 defusedxml==0.7.1)  # what `import rtvoice` needs beyond the GPU machine's packages

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
(cd "$work" && apt-get -qq download "${packages[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done

e="$work/espeak"
mkdir -p "$e/bin" "$e/lib" "$e/share"
cp "$work/root/usr/bin/espeak-ng" "$e/bin/"
# Every shared object, flattened into lib/ (symlinks kept, so sonames resolve).
find "$work/root" \( -type f -o -type l \) -name '*.so*' -path '*/lib/*' -exec cp -P {} "$e/lib/" \;
data="$(find "$work/root/usr/lib" -type d -name espeak-ng-data | head -n1)"
keep="$e/share/espeak-ng-data"
mkdir -p "$keep/lang/gmw" "$keep/voices"
cp "$data"/{phondata,phondata-manifest,phonindex,phontab,intonations,en_dict} "$keep/"
cp "$data"/lang/gmw/en* "$keep/lang/gmw/"
cp -r "$data/voices/!v" "$keep/voices/"
cat > "$e/espeak-ng" <<'WRAP'
#!/bin/sh
# Run the bundled espeak-ng with its own libraries and English data, from wherever it lies.
d="$(cd "$(dirname "$0")" && pwd)"
LD_LIBRARY_PATH="$d/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ESPEAK_DATA_PATH="$d/share" exec "$d/bin/espeak-ng" "$@"
WRAP
chmod +x "$e/espeak-ng"

# Check before packing: every library resolves inside the folder or to glibc, and it speaks
# at 22050 Hz from a moved copy with an empty environment.
outside="$(env -i LD_LIBRARY_PATH="$e/lib" ldd "$e/bin/espeak-ng" \
  | grep -v -E "=> $e/lib/|linux-vdso|ld-linux|/libc\.so|/libm\.so" || true)"
if [ -n "$outside" ]; then
  echo "error: libraries resolved outside the folder:" >&2; echo "$outside" >&2; exit 1
fi
mkdir -p "$out"
rm -rf "$out/wheels" "$out/espeak.tar.xz"
tar -C "$work" -cJf "$out/espeak.tar.xz" espeak
mkdir "$work/moved" && tar -C "$work/moved" -xJf "$out/espeak.tar.xz"
env -i "$work/moved/espeak/espeak-ng" -v en-us -w "$work/check.wav" "Hello."
rate="$(python3 -c 'import sys,wave; print(wave.open(sys.argv[1]).getframerate())' "$work/check.wav")"
[ "$rate" = 22050 ] || { echo "error: espeak-ng wrote $rate Hz, not 22050" >&2; exit 1; }

python3 -m pip download -q --no-deps --only-binary=:all: -d "$out/wheels" "${wheels[@]}" 2>&1 \
  | grep -v "^WARNING: Location" || true
echo "$out: $(du -sh "$out" | cut -f1) to carry (espeak.tar.xz $(du -h "$out/espeak.tar.xz" | cut -f1)," \
  "unpacked $(du -sh "$e" | cut -f1); wheels $(du -sh "$out/wheels" | cut -f1)); espeak-ng speaks 22050 Hz"
