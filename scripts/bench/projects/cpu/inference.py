# CPU-bound predict: a fixed amount of pure-Python work (about 5 ms), so the
# throughput is bounded by Python and replicas should scale it up to the
# number of cores.


def predict(sample, metadata):
    total = 0
    for i in range(int(sample.get("n", 150000))):
        total += i * i % 7
    return {"total": total}
