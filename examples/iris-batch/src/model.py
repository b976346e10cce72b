"""Numpy maths of the iris classifier: standardisation, a linear layer, softmax.

The same parameters as examples/iris-classifier (iris_model.npz, written by
its train.py). Every function works on a whole batch: one row per sample.
"""

import numpy as np

# Order of the input features, as named in the request JSON.
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def softmax(z):
    """Row-wise softmax, shifted by the row maximum for numerical stability."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class IrisModel:
    def __init__(self, weights, bias, mean, std, labels):
        self.weights = np.asarray(weights, dtype=np.float64)  # (4, n_classes)
        self.bias = np.asarray(bias, dtype=np.float64)  # (n_classes,)
        self.mean = np.asarray(mean, dtype=np.float64)  # (4,)
        self.std = np.asarray(std, dtype=np.float64)  # (4,)
        self.labels = [str(label) for label in labels]

    @classmethod
    def load(cls, path):
        with np.load(path, allow_pickle=False) as data:
            return cls(data["weights"], data["bias"], data["mean"], data["std"], data["labels"])

    def predict_labels(self, x):
        """(n, 4) measurements -> n species names."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        return [self.labels[i] for i in softmax(z @ self.weights + self.bias).argmax(axis=1)]
