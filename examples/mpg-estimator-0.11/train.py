"""Fit the fuel-economy model and write model/mpg_linear.npz.

A least-squares linear regression of miles per gallon on weight (1000 lb),
horsepower and model year, fitted with plain numpy on a synthetic data set
generated here from a fixed seed (300 cars around a known formula plus
noise). Deterministic: the same seed gives the same weights.

Run from this folder:  /usr/bin/python3 train.py
Not needed at serving time; the server only reads model/mpg_linear.npz.
"""

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "model", "mpg_linear.npz")
FEATURES = ["weight", "horsepower", "model_year"]


def synthetic_cars(rng, count=300):
    weight = rng.uniform(1.6, 5.0, count)  # 1000 lb
    horsepower = 40 + 35 * weight + rng.normal(0, 12, count)
    model_year = rng.integers(70, 83, count).astype(float)
    mpg = 44.0 - 5.5 * weight - 0.04 * horsepower + 0.55 * (model_year - 70) + rng.normal(0, 1.5, count)
    return np.column_stack([weight, horsepower, model_year]), mpg


def main():
    features, mpg = synthetic_cars(np.random.default_rng(0))
    design = np.column_stack([features, np.ones(len(features))])
    coef, *_ = np.linalg.lstsq(design, mpg, rcond=None)
    residual = mpg - design @ coef
    print("rmse %.3f mpg on %d cars" % (np.sqrt(np.mean(residual ** 2)), len(mpg)))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez(OUT, weights=coef[:-1], bias=coef[-1:], features=np.array(FEATURES))


if __name__ == "__main__":
    main()
