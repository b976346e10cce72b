"""Writes sample.png: a 16x8 image, three quarters orange and one quarter blue."""

import struct
import zlib


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def main():
    width, height = 16, 8
    rows = b""
    for y in range(height):
        row = b"".join(bytes((240, 140, 30)) if x < 12 else bytes((40, 90, 210)) for x in range(width))
        rows += b"\x00" + row
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    with open("sample.png", "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
