"""Cortex 0.10/0.11 interface: init(model_path, metadata) and predict(sample, metadata).

cortex-serve passes predictor.model (model/mpg_linear.npz, inside the project)
to init as a local path, as Cortex did after downloading it.
"""

import numpy as np

model = {}


def init(model_path, metadata):
    weights = np.load(model_path)
    model["weights"] = weights["weights"]
    model["bias"] = float(weights["bias"][0])
    model["features"] = [str(name) for name in weights["features"]]
    print("loaded %s: features %s" % (model_path, ", ".join(model["features"])))


def predict(sample, metadata):
    missing = [name for name in model["features"] if name not in sample]
    if missing:
        raise ValueError("the sample lacks %s" % ", ".join(missing))
    x = np.array([float(sample[name]) for name in model["features"]])
    mpg = float(x @ model["weights"] + model["bias"])
    return {"mpg": round(mpg, metadata.get("decimals", 1))}
