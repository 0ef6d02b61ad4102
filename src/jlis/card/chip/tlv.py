"""The BER-TLV subset the card's text and visual applications use: one- or two-byte tags (private
tags above 30 take the two-byte form, e.g. 33 = ``DF 21``, 32 constructed = ``FF 20``) and definite
lengths in short or long form."""

from __future__ import annotations

from collections.abc import Iterator


def private_tag(number: int, *, constructed: bool = False) -> bytes:
    """The encoded tag of a private-class tag number (16 → ``D0``, 32 constructed → ``FF 20``)."""
    first = 0xC0 | (0x20 if constructed else 0)
    if number < 31:
        return bytes([first | number])
    if number > 127:
        raise ValueError("tag numbers above 127 are not used on the card")
    return bytes([first | 0x1F, number])


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    size = (n.bit_length() + 7) // 8
    return bytes([0x80 | size]) + n.to_bytes(size, "big")


def encode(tag: bytes, value: bytes) -> bytes:
    return tag + encode_length(len(value)) + value


def iter_tlv(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Yield (tag, value) pairs; 0xFF or 0x00 padding between or after them is skipped.

    Raises ValueError on a truncated element."""
    i = 0
    n = len(data)
    while i < n:
        if data[i] in (0x00, 0xFF) and (i + 1 >= n or data[i] == 0x00 or data[i + 1] == 0xFF):
            i += 1  # padding (an erased EF reads as FF, a zero-filled one as 00)
            continue
        start = i
        if data[i] & 0x1F == 0x1F:
            i += 1
            while i < n and data[i] & 0x80:
                i += 1
        i += 1
        if i >= n:
            raise ValueError("truncated TLV tag")
        tag = data[start:i]
        first = data[i]
        i += 1
        if first & 0x80:
            size = first & 0x7F
            if size == 0 or size > 3 or i + size > n:
                raise ValueError("bad TLV length")
            length = int.from_bytes(data[i : i + size], "big")
            i += size
        else:
            length = first
        if i + length > n:
            raise ValueError("truncated TLV value")
        yield tag, data[i : i + length]
        i += length


def parse(data: bytes) -> dict[bytes, bytes]:
    """The elements of one level, by tag (later duplicates win)."""
    return dict(iter_tlv(data))


def total_length(header: bytes) -> int | None:
    """The full length of a TLV from its first bytes (tag + length), or None if more bytes are
    needed. Used to read a certificate: read a few bytes, then the rest (facts §2.5)."""
    i = 0
    if not header:
        return None
    if header[0] & 0x1F == 0x1F:
        i += 1
        while i < len(header) and header[i] & 0x80:
            i += 1
    i += 1
    if i >= len(header):
        return None
    first = header[i]
    i += 1
    if not first & 0x80:
        return i + first
    size = first & 0x7F
    if size == 0 or size > 3:
        raise ValueError("bad TLV length")
    if i + size > len(header):
        return None
    return i + size + int.from_bytes(header[i : i + size], "big")
