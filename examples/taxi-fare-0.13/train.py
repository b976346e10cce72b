"""Fit the taxi fare model and write model/fare.npz.

A least-squares linear regression of the fare (dollars) on the trip's
distance (km) and duration (minutes), fitted with plain numpy on synthetic
trips generated here from a fixed seed (a known tariff plus noise).
Deterministic: the same seed gives the same weights.

Run from this folder:  /usr/bin/python3 train.py
Not needed at serving time; the server only reads model/fare.npz.
"""

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "model", "fare.npz")


def synthetic_trips(rng, count=500):
    km = rng.uniform(0.5, 30, count)
    minutes = km * rng.uniform(1.5, 4.0, count) + rng.uniform(0, 10, count)
    fare = 3.0 + 1.6 * km + 0.35 * minutes + rng.normal(0, 1.0, count)
    return np.column_stack([km, minutes]), fare


def main():
    features, fare = synthetic_trips(np.random.default_rng(0))
    design = np.column_stack([features, np.ones(len(features))])
    coef, *_ = np.linalg.lstsq(design, fare, rcond=None)
    residual = fare - design @ coef
    print("rmse %.3f dollars on %d trips" % (np.sqrt(np.mean(residual ** 2)), len(fare)))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez(OUT, per_km=coef[0], per_minute=coef[1], base=coef[2])


if __name__ == "__main__":
    main()
