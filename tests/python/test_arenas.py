"""The arena reserve: it grows to the largest request only, stays off under
another allocator, and does what it is for: repeated 1 MB JSON round trips
in a fresh interpreter no longer fault their pages in again."""

import json
import subprocess
import sys
import unittest

from support import WORKER_DIR

from _cortex_serve_worker.arenas import MAX_RESERVE_BYTES, SMALL_OBJECTS_PER_BODY_BYTE, ArenaReserve, uses_pymalloc

# Run in a child: 1 MB bodies of 60,000 floats through the worker's own
# loads and serialize, as a request does; prints the minor page faults of
# one request, after two to settle.
ROUND_TRIPS = r"""
import json, math, resource, sys
sys.path.insert(0, sys.argv[1])
from _cortex_serve_worker.answers import loads, serialize
from _cortex_serve_worker.arenas import ArenaReserve
body = bytearray(json.dumps({"data": [math.sin(i) * 1e3 + i for i in range(60000)]}).encode())
reserve = ArenaReserve(sys.argv[2] == "on")
def request():
    reserve.fit(len(body))
    serialize(loads(bytes(body)))
request(); request()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    request()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
"""

# As workers start (src/python/worker_env.ts): glibc keeps the large buffers.
GLIBC = {"MALLOC_MMAP_THRESHOLD_": "4194304", "MALLOC_TRIM_THRESHOLD_": "33554432"}


def faults_per_request(reserve):
    out = subprocess.run(
        [sys.executable, "-c", ROUND_TRIPS, WORKER_DIR, reserve],
        env=dict(GLIBC, PATH="/usr/bin:/bin"), capture_output=True, text=True, check=True,
    )
    return int(out.stdout)


class ArenaReserveTest(unittest.TestCase):
    def test_the_reserve_grows_to_the_largest_request_only_and_stops_at_its_maximum(self):
        reserve = ArenaReserve()
        self.assertEqual(reserve.fit(300_000), 300_000 * SMALL_OBJECTS_PER_BODY_BYTE)
        pinned = len(reserve.pinned)
        self.assertGreater(pinned, 0)
        self.assertEqual(reserve.fit(100_000), 300_000 * SMALL_OBJECTS_PER_BODY_BYTE, "never shrinks")
        self.assertEqual(len(reserve.pinned), pinned)
        self.assertEqual(reserve.fit(MAX_RESERVE_BYTES), MAX_RESERVE_BYTES)
        # A few objects per MiB are kept, not the objects that filled the arenas.
        self.assertLess(len(reserve.pinned), MAX_RESERVE_BYTES // (1 << 20) * 40)

    def test_no_reserve_under_the_systems_malloc(self):
        self.assertTrue(uses_pymalloc({}))
        self.assertTrue(uses_pymalloc({"PYTHONMALLOC": "pymalloc"}))
        self.assertTrue(uses_pymalloc({"PYTHONMALLOC": "debug"}))
        self.assertFalse(uses_pymalloc({"PYTHONMALLOC": "malloc"}))
        self.assertFalse(uses_pymalloc({"PYTHONMALLOC": "malloc_debug"}))
        reserve = ArenaReserve(enabled=False)
        self.assertEqual(reserve.fit(1 << 20), 0)
        self.assertEqual(reserve.pinned, [])

    def test_large_requests_no_longer_fault_their_small_objects_in_again(self):
        without, with_reserve = faults_per_request("off"), faults_per_request("on")
        # Without: pymalloc unmaps the arenas of each request's floats and strings.
        self.assertGreater(without, 300)
        self.assertLess(with_reserve, 50)


if __name__ == "__main__":
    unittest.main()
