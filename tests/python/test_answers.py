"""What a prediction becomes on the wire: JSON bytes with the conversions
the inference interface promises, streams recognised, batch shapes checked."""

import datetime
import decimal
import json
import unittest

import support  # noqa: F401 - puts the worker package on sys.path

from _cortex_serve_worker.answers import (
    SERIALIZE_ERRORS, NotSerializable, batch_shape_error, is_stream, serialize,
)


class SerializeTest(unittest.TestCase):
    def test_plain_values_are_compact_utf8_json(self):
        self.assertEqual(serialize({"a": [1, 2.5, "é", None, True], "t": (1, 2)}), '{"a":[1,2.5,"é",null,true],"t":[1,2]}'.encode())

    def test_nan_and_infinity_become_null_at_any_depth(self):
        value = {"x": float("nan"), "y": [1.0, float("inf"), {"z": -float("inf")}], "k": (float("nan"),)}
        self.assertEqual(json.loads(serialize(value)), {"x": None, "y": [1.0, None, {"z": None}], "k": [None]})

    def test_conversions(self):
        value = {
            "set": {3, 1, 2},
            "mixed": {1, "a"},
            "bytes": b"\x00\xff",
            "date": datetime.date(2024, 1, 2),
            "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5),
            "decimal": decimal.Decimal("1.5"),
        }
        self.assertEqual(json.loads(serialize(value)), {
            "set": [1, 2, 3],
            "mixed": sorted([1, "a"], key=repr),
            "bytes": "AP8=",
            "date": "2024-01-02",
            "datetime": "2024-01-02T03:04:05",
            "decimal": 1.5,
        })

    def test_numpy_arrays_and_scalars(self):
        try:
            import numpy
        except ImportError:  # pragma: no cover - python3-numpy is in scripts/setup
            self.skipTest("numpy is not installed")
        value = {"a": numpy.arange(3), "f": numpy.float32(0.5), "n": numpy.array([numpy.nan])}
        self.assertEqual(json.loads(serialize(value)), {"a": [0, 1, 2], "f": 0.5, "n": [None]})

    def test_other_values_fail_naming_their_type(self):
        class Model:
            pass

        with self.assertRaises(NotSerializable) as caught:
            serialize({"m": Model()})
        self.assertIsInstance(caught.exception, SERIALIZE_ERRORS)
        self.assertIn("a value of type test_answers.SerializeTest.test_other_values_fail_naming_their_type.<locals>.Model", str(caught.exception))
        self.assertIn("return dicts, lists, strings", str(caught.exception))

    def test_a_cycle_is_a_serialize_error(self):
        cycle = []
        cycle.append(cycle)
        with self.assertRaises(SERIALIZE_ERRORS):
            serialize(cycle)


class ShapeTest(unittest.TestCase):
    def test_iterators_stream_and_containers_do_not(self):
        def gen():
            yield 1

        for value in (gen(), iter([1]), map(str, [1]), (i for i in range(2))):
            self.assertTrue(is_stream(value), value)
        for value in ([1], (1,), "s", b"b", {"a": 1}, bytearray(b"x"), 1, None, range(3)):
            self.assertFalse(is_stream(value), value)

    def test_a_batch_answer_is_a_list_of_the_batch_size(self):
        self.assertIsNone(batch_shape_error([1, 2], 2))
        self.assertIsNone(batch_shape_error((1, 2), 2))
        self.assertEqual(batch_shape_error([1], 2), "predict returned 1 items for a batch of 2")
        self.assertEqual(
            batch_shape_error({"a": 1}, 2),
            "predict returned builtins.dict for a batch of 2: with server_side_batching it must "
            "return a list with one prediction per sample",
        )

    def test_a_numpy_answer_gets_the_hint(self):
        try:
            import numpy
        except ImportError:  # pragma: no cover
            self.skipTest("numpy is not installed")
        self.assertTrue(batch_shape_error(numpy.zeros(2), 2).endswith("(call .tolist() on it)"))


if __name__ == "__main__":
    unittest.main()
