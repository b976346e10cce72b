"""Fit the colour namer and write model/centroids.npz.

A nearest-centroid classifier: the mean RGB value of each colour name in
data/colors.csv (30 hand-labelled colours). Deterministic.

Run from this folder:  /usr/bin/python3 train.py
Not needed at serving time; the server only reads model/centroids.npz.
"""

import csv
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "colors.csv")
OUT = os.path.join(HERE, "model", "centroids.npz")


def main():
    with open(DATA, newline="") as f:
        rows = list(csv.DictReader(f))
    names = sorted({row["name"] for row in rows})
    rgb = {name: [] for name in names}
    for row in rows:
        rgb[row["name"]].append([float(row["r"]), float(row["g"]), float(row["b"])])
    centroids = np.array([np.mean(rgb[name], axis=0) for name in names])
    print("%d colours from %d samples" % (len(names), len(rows)))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez(OUT, names=np.array(names), centroids=centroids)


if __name__ == "__main__":
    main()
