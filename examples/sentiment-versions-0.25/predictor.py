import json
import os
import re


class PythonPredictor:
    def __init__(self, config, python_client):
        self.client = python_client

    def load_model(self, model_path):
        # Called once per model version, with the version's directory.
        with open(os.path.join(model_path, "lexicon.json")) as f:
            return json.load(f)

    def predict(self, payload, query_params):
        version = query_params.get("version", "latest")
        lexicon = self.client.get_model("sentiment", version)
        words = re.findall(r"[a-z']+", payload["text"].lower())
        score = sum(lexicon.get(word, 0) for word in words)
        label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
        return {"label": label, "score": score, "version": version}
