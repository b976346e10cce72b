# No-op predict: returns the sample (a 4-field JSON object) unchanged, so the
# benchmark measures only what the server adds around predict.


def predict(sample, metadata):
    return sample
