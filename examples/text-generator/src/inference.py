"""Streams generated text one word at a time: predict returns a generator."""
import os
import time

from model import BigramModel

model = None


def init(metadata):
    global model
    path = os.path.join(os.environ["CORTEX_PROJECT_DIR"], metadata["corpus"])
    with open(path, encoding="utf-8") as f:
        model = BigramModel(f.read())


def predict(sample, metadata):
    # Checked before the stream starts, so a bad request is a plain 500.
    prompt = str(sample.get("prompt", "the"))
    max_tokens = int(sample.get("max_tokens", 20))
    if not 1 <= max_tokens <= 500:
        raise ValueError("max_tokens must be between 1 and 500, got %d" % max_tokens)
    seed = int(sample.get("seed", 0))
    temperature = float(sample.get("temperature", 1.0))
    # A real model spends time per token; this delay makes the streaming visible.
    delay = float(sample.get("delay", 0.05))
    return tokens(prompt, max_tokens, seed, temperature, delay)


def tokens(prompt, max_tokens, seed, temperature, delay):
    for index, word in enumerate(model.generate(prompt, max_tokens, seed, temperature)):
        yield {"index": index, "token": word}
        time.sleep(delay)
