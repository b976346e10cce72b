"""A word-level bigram language model in plain numpy.

Counts which word follows which in a small corpus, turns the counts into
next-word probabilities, and samples from them with a seeded generator, so
the same prompt and seed always give the same text.
"""
import numpy as np


class BigramModel:
    def __init__(self, text):
        words = text.split()
        self.vocab = sorted(set(words))
        self.index = {word: i for i, word in enumerate(self.vocab)}
        ids = np.array([self.index[w] for w in words])
        size = len(self.vocab)
        counts = np.zeros((size, size), dtype=np.float64)
        np.add.at(counts, (ids[:-1], ids[1:]), 1.0)
        counts += 0.001  # every word can follow every other, rarely
        self.probs = counts / counts.sum(axis=1, keepdims=True)

    def generate(self, prompt, max_tokens, seed, temperature=1.0):
        """Yields up to `max_tokens` words following the last known word of `prompt`."""
        rng = np.random.default_rng(seed)
        known = [w for w in prompt.lower().split() if w in self.index]
        current = self.index[known[-1]] if known else self.index["the"]
        for _ in range(max_tokens):
            logits = np.log(self.probs[current]) / max(temperature, 1e-3)
            weights = np.exp(logits - logits.max())
            current = int(rng.choice(len(self.vocab), p=weights / weights.sum()))
            yield self.vocab[current]
