"""Train the iris classifier and write iris_model.npz.

Multinomial logistic regression (softmax) fitted by full-batch gradient descent
on standardised features, with plain numpy. Deterministic: fixed seed, fixed
data order, and a byte-for-byte reproducible .npz.

Run from this folder:  /usr/bin/python3 train.py
Not needed at serving time; the server only reads iris_model.npz.
"""

import csv
import io
import os
import sys
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "src"))
from model import FEATURES, IrisModel, softmax  # noqa: E402

DATA = os.path.join(HERE, "data", "iris.csv")
OUT = os.path.join(HERE, "iris_model.npz")

SEED = 0
LEARNING_RATE = 0.5
EPOCHS = 2000
L2 = 1e-3


def load_data(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r[name]) for name in FEATURES] for r in rows], dtype=np.float64)
    species = [r["species"] for r in rows]
    labels = sorted(set(species))
    y = np.array([labels.index(s) for s in species], dtype=np.int64)
    return x, y, labels


def train(x, y, n_classes):
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    xs = (x - mean) / std
    n, d = xs.shape
    onehot = np.eye(n_classes)[y]

    rng = np.random.default_rng(SEED)
    w = rng.normal(scale=0.01, size=(d, n_classes))
    b = np.zeros(n_classes)
    for epoch in range(EPOCHS):
        p = softmax(xs @ w + b)
        grad = (p - onehot) / n
        w -= LEARNING_RATE * (xs.T @ grad + L2 * w)
        b -= LEARNING_RATE * grad.sum(axis=0)
        if epoch % 500 == 0 or epoch == EPOCHS - 1:
            loss = -np.mean(np.log(p[np.arange(n), y] + 1e-12))
            print("epoch %4d  loss %.4f" % (epoch, loss))
    return w, b, mean, std


def save_npz(path, arrays):
    """Like np.savez, but with fixed zip timestamps so reruns give identical bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def main():
    x, y, labels = load_data(DATA)
    print("loaded %d rows, %d features, classes: %s" % (x.shape[0], x.shape[1], ", ".join(labels)))
    w, b, mean, std = train(x, y, len(labels))

    model = IrisModel(w, b, mean, std, labels)
    predicted = model.predict_proba(x).argmax(axis=1)
    accuracy = float(np.mean(predicted == y))
    print("training accuracy: %.2f%% (%d/%d)" % (100 * accuracy, int((predicted == y).sum()), len(y)))

    save_npz(OUT, {
        "weights": w,
        "bias": b,
        "mean": mean,
        "std": std,
        "labels": np.array(labels),
        "features": np.array(FEATURES),
    })
    print("wrote %s" % os.path.relpath(OUT))


if __name__ == "__main__":
    main()
