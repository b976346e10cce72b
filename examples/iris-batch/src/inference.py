# The iris classifier, written for server-side batching.
#
# With server_side_batching in cortex.yaml, predict receives a list of samples
# (one per waiting request, in arrival order) and returns a list of the same
# length: element i answers request i. The model runs once on the whole batch,
# as one matrix product, so 32 requests cost little more than one.

import os

import numpy as np

from model import FEATURES, IrisModel

model = None


def init(metadata):
    global model
    path = metadata["model"]  # relative to the project root (the working directory)
    if not os.path.isabs(path):
        path = os.path.join(os.environ.get("CORTEX_PROJECT_DIR", os.getcwd()), path)
    model = IrisModel.load(path)
    print("loaded model from %s (classes: %s)" % (metadata["model"], ", ".join(model.labels)))


def pre_inference(sample, metadata):
    """Runs once per request: one JSON body in, one row of features out."""
    if not isinstance(sample, dict):
        raise ValueError("expected a JSON object with the fields %s" % ", ".join(FEATURES))
    row = []
    for name in FEATURES:
        value = sample.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("field %r must be a number, got %r" % (name, value))
        row.append(float(value))
    return row


def predict(samples, metadata):
    """Runs once per batch: n rows in, n labels out, in the same order."""
    x = np.array(samples, dtype=np.float64)  # shape (n, 4)
    return model.predict_labels(x)  # a list of n strings
