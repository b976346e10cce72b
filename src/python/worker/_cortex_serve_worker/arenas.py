"""Keeps Python's small-object arenas mapped between large requests.

CPython's small-object allocator (pymalloc) takes memory from the system in
1 MiB arenas and unmaps an arena as soon as the last object in it is freed.
A large JSON request makes many small objects (a float per number read, a
string per number written) that are all freed when it ends, so every such
request mapped its arenas again and paid a page fault for each of their
pages: ~750 per request for a 1 MB body of 60,000 floats, a fifth of the
worker's time (docs/performance.md, Large bodies).

An arena stays mapped while one object in it lives. `ArenaReserve.fit`
allocates small objects over `SMALL_OBJECTS_PER_BODY_BYTE` times a large
request's size, keeps one per `PIN_SPACING` bytes of address space (so
every arena they filled keeps at least one) and frees the rest: their pools
go back to the pinned arenas, where the next request's objects find them,
already mapped. The reserve only grows, to the largest request seen, up to
`MAX_RESERVE_BYTES`; a worker that never sees a large request reserves
nothing."""

import os

# Requests below this size do not reserve: their objects fit the arenas in use.
LARGE_REQUEST_BYTES = 256 * 1024
# Small-object bytes a JSON body makes, per byte of body: 60,000 floats in
# 0.8 MB make ~1.9 MB of floats read and ~3.8 MB of strings written.
SMALL_OBJECTS_PER_BODY_BYTE = 8
MAX_RESERVE_BYTES = 64 * 1024 * 1024
# One object kept per this many bytes of address space: several per arena,
# whatever the arenas' alignment (mmap aligns them to pages only).
PIN_SPACING = 64 * 1024
# A float takes one 32-byte block of pymalloc on 64-bit builds.
FLOAT_BLOCK_BYTES = 32

# PYTHONMALLOC values without pymalloc ("debug" keeps it, with its debug hooks).
_OTHER_ALLOCATORS = ("malloc", "malloc_debug")


def uses_pymalloc(environ=os.environ):
    """False when PYTHONMALLOC chose the system's malloc (which has no arenas)."""
    return environ.get("PYTHONMALLOC", "") not in _OTHER_ALLOCATORS


class ArenaReserve:
    """The objects that keep the reserved arenas mapped, and how much they reserve."""

    def __init__(self, enabled=True):
        self.enabled = enabled
        self.reserved = 0
        self.pinned = []

    def fit(self, request_bytes):
        """Grows the reserve for a request of `request_bytes`; returns the bytes reserved."""
        want = min(request_bytes * SMALL_OBJECTS_PER_BODY_BYTE, MAX_RESERVE_BYTES)
        if not self.enabled or want <= self.reserved:
            return self.reserved
        blocks = [float(i) for i in range((want - self.reserved) // FLOAT_BLOCK_BYTES)]
        spaces = set(id(f) // PIN_SPACING for f in self.pinned)
        for block in blocks:
            space = id(block) // PIN_SPACING
            if space not in spaces:
                spaces.add(space)
                self.pinned.append(block)
        self.reserved = want
        return want
