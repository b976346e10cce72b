"""Cortex 0.12 interface: class PythonPredictor with __init__(self, config) and predict(self, payload).

cortex-serve builds the class once with predictor.config and calls predict
per request; predictor.env is in os.environ before this file is imported.
"""

import os

import numpy as np


class PythonPredictor:
    def __init__(self, config):
        model = np.load(config["model"])
        self.names = [str(name) for name in model["names"]]
        self.centroids = model["centroids"]
        self.verbose = os.environ.get("COLOR_NAMER_VERBOSE") == "1"
        print("loaded %d colours from %s" % (len(self.names), config["model"]))

    def predict(self, payload):
        rgb = np.array(payload["rgb"], dtype=float)
        if rgb.shape != (3,):
            raise ValueError("rgb must be three numbers from 0 to 255, got %r" % (payload["rgb"],))
        distances = np.linalg.norm(self.centroids - rgb, axis=1)
        best = int(np.argmin(distances))
        if self.verbose:
            print("rgb %s -> %s" % (rgb.tolist(), self.names[best]))
        return {"color": self.names[best], "distance": round(float(distances[best]), 1)}
