"""Numpy maths for the iris classifier: a multinomial logistic regression.

Shared by ``train.py`` (which fits the parameters) and ``inference.py`` (which
serves them). Only numpy is needed.
"""

import numpy as np

# Order of the input features, as named in the request JSON and the CSV header.
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def softmax(z):
    """Row-wise softmax, shifted by the row maximum for numerical stability."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def features_from_sample(sample):
    """Turn one request body into a (1, 4) float array.

    ``sample`` is the parsed JSON, e.g.
    ``{"sepal_length": 5.2, "sepal_width": 3.6, "petal_length": 1.4, "petal_width": 0.3}``.
    Raises ValueError naming the problem field.
    """
    if not isinstance(sample, dict):
        raise ValueError(
            "expected a JSON object with the fields %s, got %s"
            % (", ".join(FEATURES), type(sample).__name__)
        )
    values = []
    for name in FEATURES:
        if name not in sample:
            raise ValueError("missing field %r (required fields: %s)" % (name, ", ".join(FEATURES)))
        value = sample[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("field %r must be a number, got %r" % (name, value))
        values.append(float(value))
    x = np.array([values], dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("all fields must be finite numbers")
    return x


class IrisModel:
    """Standardisation + linear layer + softmax, with the class labels."""

    def __init__(self, weights, bias, mean, std, labels):
        self.weights = np.asarray(weights, dtype=np.float64)  # (4, n_classes)
        self.bias = np.asarray(bias, dtype=np.float64)  # (n_classes,)
        self.mean = np.asarray(mean, dtype=np.float64)  # (4,)
        self.std = np.asarray(std, dtype=np.float64)  # (4,)
        self.labels = [str(label) for label in labels]

    @classmethod
    def load(cls, path):
        """Load the parameters written by train.py (a plain .npz, no pickles)."""
        with np.load(path, allow_pickle=False) as data:
            return cls(data["weights"], data["bias"], data["mean"], data["std"], data["labels"])

    def predict_proba(self, x):
        x = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        return softmax(x @ self.weights + self.bias)

    def predict_labels(self, x):
        return [self.labels[i] for i in self.predict_proba(x).argmax(axis=1)]
