import json
import os

import numpy as np

from png_reader import read_png


class PythonPredictor:
    def __init__(self, config):
        with open(os.path.join(os.path.dirname(__file__), config["palette"])) as f:
            palette = json.load(f)
        self.names = list(palette)
        self.colors = np.array([palette[name] for name in self.names], dtype=np.float64)

    def predict(self, payload):
        # Any Content-Type but JSON, text or a form arrives as the raw bytes.
        pixels = read_png(payload)[:, :, :3].reshape(-1, 3).astype(np.float64)
        if pixels.shape[0] == 0:
            raise ValueError("the image has no pixels")
        distances = ((pixels[:, None, :] - self.colors[None, :, :]) ** 2).sum(axis=2)
        counts = np.bincount(distances.argmin(axis=1), minlength=len(self.names))
        shares = {self.names[i]: round(float(c) / pixels.shape[0], 3) for i, c in enumerate(counts) if c}
        return {
            "pixels": int(pixels.shape[0]),
            "mean_rgb": [round(float(v), 1) for v in pixels.mean(axis=0)],
            "dominant": self.names[int(counts.argmax())],
            "shares": shares,
        }
