"""Cortex 0.13 interface (as 0.12): class PythonPredictor with __init__(self, config) and predict(self, payload)."""

import numpy as np


class PythonPredictor:
    def __init__(self, config):
        model = np.load(config["model"])
        self.tariff = np.array([float(model["per_km"]), float(model["per_minute"])])
        self.base = float(model["base"])
        self.currency = config.get("currency", "USD")

    def predict(self, payload):
        trip = np.array([float(payload["km"]), float(payload["minutes"])])
        fare = self.base + float(trip @ self.tariff)
        return {"fare": round(fare, 2), "currency": self.currency}
