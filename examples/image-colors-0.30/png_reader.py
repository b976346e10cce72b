"""A small PNG reader (8-bit greyscale, RGB and RGBA, not interlaced) on zlib and
numpy, so the example needs no imaging library."""

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 6: 4}


def read_png(data):
    """The pixels of a PNG as a (height, width, channels) uint8 array."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG image")
    at = len(SIGNATURE)
    header = None
    compressed = bytearray()
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        chunk = data[at + 8:at + 8 + length]
        at += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            compressed += chunk
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("the PNG has no header")
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color not in CHANNELS or interlace:
        raise ValueError("only 8-bit, non-interlaced greyscale, RGB and RGBA PNGs are read")
    channels = CHANNELS[color]
    stride = width * channels
    raw = zlib.decompress(bytes(compressed))
    pixels = np.zeros((height, stride), dtype=np.int32)
    previous = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        kind, row = line[0], np.frombuffer(line[1:], dtype=np.uint8).astype(np.int32)
        out = row.copy()
        if kind == 2:
            out = (row + previous) & 0xFF
        elif kind in (1, 3, 4):
            for x in range(stride):
                left = out[x - channels] if x >= channels else 0
                up = previous[x]
                corner = previous[x - channels] if x >= channels else 0
                if kind == 1:
                    predictor = left
                elif kind == 3:
                    predictor = (left + up) // 2
                else:
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                out[x] = (row[x] + predictor) & 0xFF
        pixels[y] = out
        previous = out
    return pixels.astype(np.uint8).reshape(height, width, channels)
