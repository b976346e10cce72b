# A model whose cost is mostly per call: 5 ms however many samples it gets
# (a GPU kernel launch, a framework's dispatch), plus about 50 us of CPU per
# sample. With server_side_batching, predict receives a list of samples and
# returns one prediction per sample; without it, one sample.
import time

CALL_SECONDS = 0.005
SAMPLE_SECONDS = 0.00005


def _work(sample):
    end = time.perf_counter() + SAMPLE_SECONDS
    while time.perf_counter() < end:
        pass
    return {"id": sample.get("id"), "label": "ok"}


def predict(payload, metadata):
    time.sleep(CALL_SECONDS)
    if isinstance(payload, list):
        return [_work(sample) for sample in payload]
    return _work(payload)
