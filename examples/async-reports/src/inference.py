# A slow "report" model: counts words, finds the most frequent ones and picks
# the sentences that carry them as a summary. It sleeps in proportion to the
# text's length to stand in for a model that takes seconds to minutes, which
# is what makes it a job rather than a request.

import collections
import re
import time

STOP_WORDS = set(
    "a an and are as at be by for from has have in is it its of on or that the this to was were will with".split()
)

settings = {}


def init(metadata):
    settings["seconds_per_kiloword"] = float(metadata.get("seconds_per_kiloword", 2))
    settings["sentences"] = int(metadata.get("sentences", 2))


def predict(sample, metadata):
    text = sample.get("text") if isinstance(sample, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise ValueError('the sample must be {"text": "..."} with some text')
    words = re.findall(r"[a-z']+", text.lower())
    time.sleep(len(words) / 1000 * settings["seconds_per_kiloword"])
    counts = collections.Counter(w for w in words if w not in STOP_WORDS and len(w) > 2)
    top = [word for word, _ in counts.most_common(5)]
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    scored = sorted(
        range(len(sentences)),
        key=lambda i: (-sum(counts[w] for w in re.findall(r"[a-z']+", sentences[i].lower()) if w in top), i),
    )
    keep = sorted(scored[: settings["sentences"]])
    return {"words": len(words), "top_words": top, "summary": " ".join(sentences[i] for i in keep)}
