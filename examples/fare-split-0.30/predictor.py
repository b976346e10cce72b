import json
import os


class PythonPredictor:
    def __init__(self, config):
        with open(os.path.join(os.path.dirname(__file__), config["model"])) as f:
            self.model = json.load(f)

    def predict(self, payload):
        m = self.model
        fare = m["base"] + m["per_km"] * payload["km"] + m["per_minute"] * payload["minutes"]
        if payload.get("night") and "night_factor" in m:
            fare *= m["night_factor"]
        return {"fare": round(fare, 2), "model": m["version"]}
