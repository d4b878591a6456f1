"""Read the CUDA fat binaries inside an ELF library, and blank the entries one GPU can never load.

Why: onnxruntime-gpu's CUDA provider library is 270 MB, 218 MB of it device code for six
GPU architectures, and the device machine takes ~27 MB a call. A driver only ever loads a
cubin built for its own architecture (same major version, minor not above its own; an
arch-specific ``sm_90a`` cubin only on 9.0 exactly) or JIT-compiles PTX of a version not
above its own. Zeroing every other entry's payload, with every size, offset and header left
as it was, keeps the ELF and fatbin layout byte for byte while the zeros compress to
nothing. Standard library only: the device machine runs this with a bare Python.

Layout (NVIDIA's fatbinary container, as the driver and ``cuobjdump`` read it): the
``.nv_fatbin`` section is a run of containers, each a 16-byte header (magic 0xBA55ED50,
u16 version, u16 header size, u64 size of the entries) followed by entries, each a header
(u16 kind: 1 PTX, 2 ELF cubin; u16 version; u32 header size; u64 payload size; u32
compressed size at +16; u32 arch at +28; u64 flags at +40; u64 uncompressed size at +56)
and its payload. CUDA 13's payloads are zstd frames; a blanked one becomes a valid zstd
frame of the same length that inflates to the same number of zero bytes, so even a tool
that inflates every entry (``cuobjdump --list-elf`` does) reads it without error.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Final

CONTAINER_MAGIC: Final = 0xBA55ED50
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
KIND_PTX: Final = 1
KIND_ELF: Final = 2
FLAG_ARCH_SPECIFIC: Final = 0x100000  # cuobjdump names these cubins sm_90a, sm_120a (checked on ORT 1.31.1)
_ELF_MAGIC: Final = b"\x7fELF"


class FatbinError(ValueError):
    """The bytes are not the fatbin layout this reader knows; nothing is written then."""


@dataclass(frozen=True)
class Entry:
    """One image in a container: where its header and payload lie in the section."""

    offset: int  # of the entry header, from the section start
    kind: int
    header_size: int
    payload_size: int
    arch: int  # 90 for sm_90/sm_90a/compute_90
    flags: int
    compressed_size: int  # bytes of the payload that hold the (zstd) frame; the rest is padding
    content_size: int  # the image's size once inflated

    @property
    def payload_offset(self) -> int:
        return self.offset + self.header_size

    @property
    def name(self) -> str:
        prefix = {KIND_PTX: "compute", KIND_ELF: "sm"}.get(self.kind, f"kind{self.kind}")
        return f"{prefix}_{self.arch}{'a' if self.flags & FLAG_ARCH_SPECIFIC else ''}"


@dataclass(frozen=True)
class Container:
    offset: int
    size: int  # header plus entries
    entries: tuple[Entry, ...]


def _section_headers(data: bytes | bytearray | memoryview) -> list[tuple[int, int, int, int, int]]:
    """(name offset, type, file offset, size, link) of each section of a little-endian ELF64 file."""
    if bytes(data[:4]) != _ELF_MAGIC or data[4] != 2 or data[5] != 1:
        raise FatbinError("not a little-endian 64-bit ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    if shoff == 0 or shnum == 0 or shoff + shnum * shentsize > len(data):
        raise FatbinError("ELF section headers are missing or truncated")
    headers = []
    for i in range(shnum):
        base = shoff + i * shentsize
        name_off, kind = struct.unpack_from("<II", data, base)
        offset, size = struct.unpack_from("<QQ", data, base + 0x18)
        link, = struct.unpack_from("<I", data, base + 0x28)
        headers.append((name_off, kind, offset, size, link))
    return headers


def _string(table: bytes | bytearray | memoryview, offset: int) -> str:
    end = bytes(table[offset:offset + 4096]).find(b"\0")
    return bytes(table[offset:offset + (end if end >= 0 else 0)]).decode("ascii", "replace")


def elf_section(data: bytes | bytearray | memoryview, name: str) -> tuple[int, int]:
    """(file offset, size) of a named section of a little-endian ELF64 file."""
    headers = _section_headers(data)
    shstrndx, = struct.unpack_from("<H", data, 0x3E)
    _, _, str_off, str_size, _ = headers[shstrndx]
    strings = data[str_off:str_off + str_size]
    for name_off, kind, offset, size, _ in headers:
        if _string(strings, name_off) == name:
            if kind == 8 or offset + size > len(data):  # SHT_NOBITS holds no bytes
                raise FatbinError(f"section {name} has no bytes in the file")
            return offset, size
    raise FatbinError(f"no {name} section")


def cubin_kernels(image: bytes) -> list[str]:
    """The function symbols of an (inflated) cubin, but the compiler's ``$__internal`` helpers."""
    headers = _section_headers(image)
    names = []
    for _, kind, offset, size, link in headers:
        if kind != 2:  # SHT_SYMTAB
            continue
        _, _, str_off, str_size, _ = headers[link]
        strings = image[str_off:str_off + str_size]
        for k in range(size // 24):
            name_off, info = struct.unpack_from("<IB", image, offset + 24 * k)
            if info & 0xF == 2:  # STT_FUNC
                name = _string(strings, name_off)
                if not name.startswith("$"):
                    names.append(name)
    return names


def read_fatbin(section: bytes | bytearray | memoryview) -> list[Container]:
    """Every container and entry; refuses anything that does not tile the section exactly."""
    containers: list[Container] = []
    pos = 0
    total = len(section)
    while pos < total:
        if total - pos < 16:
            if bytes(section[pos:]) != bytes(total - pos):
                raise FatbinError(f"{total - pos} stray bytes at the end of the section")
            break
        magic, version, hsize, fat_size = struct.unpack_from("<IHHQ", section, pos)
        if magic != CONTAINER_MAGIC:
            if bytes(section[pos:pos + 16]) == bytes(16):  # alignment padding between containers
                pos += 8
                continue
            raise FatbinError(f"bad container magic {magic:#x} at offset {pos}")
        if hsize < 16 or version != 1:
            raise FatbinError(f"unknown container version {version} or header size {hsize} at offset {pos}")
        end = pos + hsize + fat_size
        if end > total:
            raise FatbinError(f"container at offset {pos} runs past the section ({end} > {total})")
        entries: list[Entry] = []
        e = pos + hsize
        while e < end:
            if end - e < 64:
                raise FatbinError(f"truncated entry header at offset {e}")
            kind, _ver, ehsize, psize = struct.unpack_from("<HHIQ", section, e)
            csize, = struct.unpack_from("<I", section, e + 16)
            arch, = struct.unpack_from("<I", section, e + 28)
            flags, content = struct.unpack_from("<Q", section, e + 40)[0], struct.unpack_from("<Q", section, e + 56)[0]
            if ehsize < 64 or e + ehsize + psize > end:
                raise FatbinError(f"entry at offset {e} (header {ehsize}, payload {psize}) overruns its container")
            entries.append(Entry(e, kind, ehsize, psize, arch, flags, csize, content))
            e += ehsize + psize
        containers.append(Container(pos, end - pos, tuple(entries)))
        pos = end
    return containers


def loadable_on(entry: Entry, device_arch: int) -> bool:
    """Whether a driver on a GPU of ``device_arch`` (90 = compute capability 9.0) could use it.

    Cubins run within one major version, never on a lower minor; arch-specific ones (sm_90a)
    only on their own; PTX is JIT-compiled for any GPU of its version or newer. Kinds this
    reader does not know are counted as loadable, so they are never blanked.
    """
    if entry.kind == KIND_ELF:
        if entry.flags & FLAG_ARCH_SPECIFIC:
            return entry.arch == device_arch
        return entry.arch // 10 == device_arch // 10 and entry.arch <= device_arch
    if entry.kind == KIND_PTX:
        return entry.arch <= device_arch
    return True


_ZSTD_MAX_BLOCK: Final = 128 * 1024


def zero_zstd_frame(length: int, content_size: int) -> bytes | None:
    """A zstd frame of exactly ``length`` bytes that inflates to ``content_size`` zero bytes.

    A single-segment frame header with a 4-byte content size, then raw blocks of zeros and
    RLE blocks of zero (RFC 8878, sections 3.1.1 and 3.1.1.2); None when no such split fits.
    """
    if not 0 < content_size < 2**32:
        return None
    header = ZSTD_MAGIC + bytes([0xA0]) + struct.pack("<I", content_size)  # FCS 4 bytes, single segment
    budget = length - len(header)
    most = min(content_size, _ZSTD_MAX_BLOCK)
    for rle in range(0, -(-content_size // most) + 3):
        for raw in range(0, budget // most + 3):
            raw_bytes = budget - 4 * rle - 3 * raw  # raw blocks cost 3 + n, RLE blocks 3 + 1
            rle_bytes = content_size - raw_bytes
            if raw_bytes < 0 or rle_bytes < 0:
                continue
            if not (raw_bytes == 0 if raw == 0 else -(-raw_bytes // most) <= raw <= raw_bytes):
                continue
            if not (rle_bytes == 0 if rle == 0 else rle <= rle_bytes <= rle * most):
                continue
            blocks = [(0, n) for n in _spread(raw_bytes, raw)] + [(1, n) for n in _spread(rle_bytes, rle)]
            out = bytearray(header)
            for i, (kind, n) in enumerate(blocks):
                out += ((n << 3) | (kind << 1) | (i == len(blocks) - 1)).to_bytes(3, "little")
                out += bytes(n if kind == 0 else 1)
            if blocks and len(out) == length:
                return bytes(out)
    return None


def _spread(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal positive sizes."""
    return [total // parts + (i < total % parts) for i in range(parts)] if parts else []


def blank_payload(entry: Entry, payload: bytes | bytearray | memoryview) -> bytes:
    """What an unloadable entry's payload becomes: an all-zero zstd frame, or plain zeros."""
    if bytes(payload[:4]) == ZSTD_MAGIC and entry.compressed_size <= entry.payload_size:
        frame = zero_zstd_frame(entry.compressed_size, entry.content_size)
        if frame is not None:
            return frame + bytes(entry.payload_size - len(frame))
    return bytes(entry.payload_size)


@dataclass
class BlankReport:
    kept: dict[str, int]  # entry name -> count
    blanked: dict[str, int]
    kept_bytes: int
    blanked_bytes: int
    extra: list[int] = field(default_factory=list)  # entry offsets of loadable images blanked as unused


def blank_unloadable(section: bytearray | memoryview, device_arch: int,
                     unused: Callable[[Entry, bytes], bool] | None = None) -> BlankReport:
    """Blank, in place, the payloads no driver of ``device_arch`` could load; nothing else moves.

    ``unused(entry, payload)`` may name loadable images to blank as well (their kernels are
    never launched); they are counted as ``"<name> (unused)"`` and listed in ``extra``.
    """
    containers = read_fatbin(section)
    report = BlankReport({}, {}, 0, 0)
    for c in containers:
        for e in c.entries:
            start, stop = e.payload_offset, e.payload_offset + e.payload_size
            name = e.name
            if loadable_on(e, device_arch):
                if unused is None or not unused(e, bytes(section[start:stop])):
                    report.kept[name] = report.kept.get(name, 0) + 1
                    report.kept_bytes += e.payload_size
                    continue
                name += " (unused)"
                report.extra.append(e.offset)
            section[start:stop] = blank_payload(e, section[start:stop])
            report.blanked[name] = report.blanked.get(name, 0) + 1
            report.blanked_bytes += e.payload_size
    return report


def check_blanked(before: bytes | bytearray | memoryview, after: bytes | bytearray | memoryview, device_arch: int,
                  extra: Collection[int] = ()) -> None:
    """Raise unless ``after`` is ``before`` with exactly the unloadable payloads blanked.

    Same length, same containers and entry headers, every loadable payload byte-identical
    (but those of the entries at offsets ``extra``), every blanked payload its zero frame (or
    zeros), and every byte outside those unchanged.
    """
    if len(before) != len(after):
        raise FatbinError(f"length changed: {len(before)} -> {len(after)}")
    old, new = read_fatbin(before), read_fatbin(after)
    if old != new:
        raise FatbinError("the container or entry headers differ after blanking")
    extra = frozenset(extra)
    if not extra <= {e.offset for c in old for e in c.entries}:
        raise FatbinError("an entry named as unused is not an entry of this fatbin")
    pos = 0
    for c in old:
        for e in c.entries:
            start, stop = e.payload_offset, e.payload_offset + e.payload_size
            if loadable_on(e, device_arch) and e.offset not in extra:
                continue
            if bytes(before[pos:start]) != bytes(after[pos:start]):
                raise FatbinError(f"bytes changed between offsets {pos} and {start}")
            if bytes(after[start:stop]) != blank_payload(e, before[start:stop]):
                raise FatbinError(f"payload of {e.name} at offset {start} is not its blank")
            pos = stop
    if bytes(before[pos:]) != bytes(after[pos:]):
        raise FatbinError(f"bytes changed after offset {pos}")
