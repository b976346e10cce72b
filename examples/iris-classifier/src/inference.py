# Cortex Python inference implementation for the iris classifier.
#
# Global scope runs once per replica when the file is imported; init(metadata)
# runs once after that; predict(sample, metadata) runs for every request.

import os

from model import IrisModel, features_from_sample

model = None


def init(metadata):
    global model
    path = metadata["model"]  # relative to the project root (the working directory)
    if not os.path.isabs(path):
        path = os.path.join(os.environ.get("CORTEX_PROJECT_DIR", os.getcwd()), path)
    model = IrisModel.load(path)
    print("loaded model from %s (classes: %s)" % (metadata["model"], ", ".join(model.labels)))


def predict(sample, metadata):
    x = features_from_sample(sample)
    return model.predict_labels(x)[0]
