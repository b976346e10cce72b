"""What a prediction becomes on the wire: UTF-8 JSON bytes (numpy values,
sets, bytes, dates and Decimals converted; NaN and Infinity as null), a
stream when predict returns an iterator, and the check of a batch's answer."""

import base64
import collections.abc
import datetime
import decimal
import json
import math


class NotSerializable(TypeError):
    pass


def to_json_value(value):
    """`default` hook for json.dumps: numpy values, sets, bytes (base64), dates (ISO 8601), Decimals."""
    module = type(value).__module__
    if module == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return sorted(value, key=repr)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    kind = type(value)
    raise NotSerializable(
        "the prediction contains a value of type %s.%s, which cannot be converted "
        "to JSON: return dicts, lists, strings, numbers, booleans, None, numpy "
        "arrays or scalars, sets, bytes, dates or Decimals"
        % (kind.__module__, kind.__qualname__)
    )


def finite(value):
    """Replaces NaN and +/-Infinity with None, converting as it goes."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return finite(to_json_value(value))


# One encoder for every prediction: json.dumps with options builds a new one per call.
dumps = json.JSONEncoder(
    default=to_json_value, allow_nan=False, ensure_ascii=False, separators=(",", ":"),
).encode


# What serialize raises for a value that cannot become JSON.
SERIALIZE_ERRORS = (TypeError, ValueError, RecursionError)

# Samples arrive as UTF-8 JSON bytes.
loads = json.loads


def serialize(prediction):
    """Prediction -> UTF-8 JSON bytes. NaN and +/-Infinity become null."""
    try:
        text = dumps(prediction)
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        text = dumps(finite(prediction))
    return text.encode("utf-8")


# Types a prediction usually has: never a stream, no isinstance check against the ABC needed.
PLAIN_TYPES = frozenset((dict, list, str, int, float, bool, type(None), tuple, bytes))


def is_stream(value):
    """A generator or another iterator: its items are streamed."""
    return isinstance(value, collections.abc.Iterator) and not isinstance(
        value, (str, bytes, bytearray, memoryview, dict, list, tuple)
    )


def batch_shape_error(predictions, size):
    """Why `predictions` cannot answer a batch of `size`, or None."""
    if not isinstance(predictions, (list, tuple)):
        kind = type(predictions)
        hint = " (call .tolist() on it)" if hasattr(predictions, "tolist") else ""
        return (
            "predict returned %s.%s for a batch of %d: with server_side_batching it must "
            "return a list with one prediction per sample%s"
            % (kind.__module__, kind.__qualname__, size, hint)
        )
    if len(predictions) != size:
        return "predict returned %d items for a batch of %d" % (len(predictions), size)
    return None
