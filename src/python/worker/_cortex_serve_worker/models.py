"""Multi-model PythonPredictors (Cortex 0.22+): `python_client.get_model(
model_name=None, model_version="latest")` returns what `load_model(self,
model_path)` returned for that model version, loading it on first use.

A model is a directory of numbered version subdirectories ("latest" or
"highest" is the highest number); a directory without numbered
subdirectories is version "1". Models come from `path` (one model, its name
ignored), `paths` (by name) or `dir` (each top-level folder a model), local
or `s3://`. Live reloading: the versions are listed again on use (a local
directory at once, S3 at most every RELIST_SECONDS), so a new version
directory is served by "latest" from the next request on, and a version
whose files changed is loaded again. `cache_size` bounds the models kept in
memory and `disk_cache_size` the downloaded versions kept on disk, each
least-recently-used first. Loads and evictions are logged and sent to the
server as `model` events for its metrics."""

import collections
import os
import shutil
import threading
import time

from .process import log

RELIST_SECONDS = 10.0
STAMP_SECONDS = 1.0


class MetricsClient:
    """Cortex 0.30's metrics_client: custom metrics are accepted and not exported."""

    def gauge(self, metric, value, tags=None):
        pass

    def increment(self, metric, value=1, tags=None):
        pass

    def histogram(self, metric, value, tags=None):
        pass


def _versions(path):
    """Numbered version subdirectories of `path`, sorted; [] when it has none."""
    try:
        names = os.listdir(path)
    except OSError:
        return []
    return sorted(int(n) for n in names if n.isdigit() and os.path.isdir(os.path.join(path, n)))


def _stamp(path):
    """The newest modification time under `path` (a changed version is loaded again)."""
    newest = 0.0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                newest = max(newest, os.stat(os.path.join(root, name)).st_mtime)
            except OSError:
                pass
    return newest


class ModelClient:
    """python_client: get_model() over the configured models, with both caches."""

    def __init__(self, spec, download_dir, emit):
        self.sources = {s["name"]: s["path"] for s in spec.get("sources") or []}
        self.dir = spec.get("dir")
        self.cache_size = spec.get("cache_size")
        self.disk_cache_size = spec.get("disk_cache_size")
        self.download_dir = download_dir
        self.emit = emit
        self.load_model = None
        self.loaded = collections.OrderedDict()  # (name, version) -> (model, stamp, checked_at)
        self.on_disk = collections.OrderedDict()  # downloaded (name, version) -> local path
        self.listed = {}  # s3 location -> (listed_at, {version: [keys]})
        self.lock = threading.Lock()

    @staticmethod
    def from_init(message, emit=None):
        spec = message.get("models")
        if not spec:
            return None
        return ModelClient(spec, message.get("model_dir"), emit or (lambda event: None))

    def bind(self, load_model):
        self.load_model = load_model

    def get_model(self, model_name=None, model_version="latest"):
        """The loaded model of `model_name` at `model_version` ("latest", "highest" or a number)."""
        version = str(model_version)
        if version not in ("latest", "highest") and not version.isdigit():
            raise ValueError('model_version must be "latest" or a version number, got %r' % (model_version,))
        location = self._location(model_name)
        with self.lock:
            local, number = self._local_version(model_name or "", location, version)
            key = (model_name or "", number)
            entry = self.loaded.get(key)
            now = time.monotonic()
            if entry is not None and now - entry[2] < STAMP_SECONDS:
                self.loaded.move_to_end(key)
                return entry[0]
            stamp = _stamp(local)
            if entry is not None and entry[1] == stamp:
                self.loaded[key] = (entry[0], stamp, now)
                self.loaded.move_to_end(key)
                return entry[0]
            started = time.monotonic()
            model = self.load_model(local)
            seconds = time.monotonic() - started
            self.loaded[key] = (model, stamp, now)
            self.loaded.move_to_end(key)
            what = "reloaded" if entry is not None else "loaded"
            log("model %s version %s %s in %.3f s" % (key[0] or "(default)", number, what, seconds))
            self.emit({"type": "model", "event": "load", "model": key[0], "version": number, "seconds": seconds})
            self._evict()
            return model

    def _location(self, name):
        if self.dir is not None:
            if not name:
                raise ValueError("model_name is required: the models are the folders of %s" % self.dir)
            if "/" in name or name in (".", ".."):
                raise ValueError("model_name must be a folder name, got %r" % name)
            return self.dir.rstrip("/") + "/" + name
        if "" in self.sources:
            return self.sources[""]
        if name is None or name not in self.sources:
            raise ValueError(
                "model_name must be one of %s, got %r" % (", ".join(sorted(self.sources)), name)
            )
        return self.sources[name]

    def _local_version(self, name, location, version):
        """(local directory, version number) of `version` of the model at `location`."""
        if location.startswith("s3://"):
            return self._s3_version(name, location, version)
        if not os.path.isdir(location):
            raise ValueError("model %r: no directory at %s" % (name, location))
        versions = _versions(location)
        if not versions:
            if version in ("latest", "highest", "1"):
                return location, "1"
            raise ValueError("model %r has no version %s (it is unversioned: version 1)" % (name, version))
        number = versions[-1] if version in ("latest", "highest") else int(version)
        if number not in versions:
            raise ValueError("model %r has no version %s; it has %s" % (name, version, ", ".join(map(str, versions))))
        return os.path.join(location, str(number)), str(number)

    def _s3_version(self, name, location, version):
        from .s3 import list_prefix, download_keys  # boto3 only when S3 is used

        listed_at, versions = self.listed.get(location, (None, None))
        if listed_at is None or time.monotonic() - listed_at >= RELIST_SECONDS:
            versions = list_prefix(location)
            self.listed[location] = (time.monotonic(), versions)
        if not versions:
            raise ValueError("model %r: nothing found at %s" % (name, location))
        numbers = sorted(int(v) for v in versions if v.isdigit())
        if version in ("latest", "highest"):
            number = str(numbers[-1]) if numbers else "1"
        else:
            number = version
        if number not in versions:
            raise ValueError("model %r has no version %s at %s" % (name, version, location))
        key = (name, number)
        local = self.on_disk.get(key)
        if local is None or not os.path.isdir(local):
            if not self.download_dir:
                raise ValueError("model %r: no download directory for s3:// models" % name)
            local = os.path.join(self.download_dir, "multi", name or "default", number)
            download_keys(location, versions[number], local)
            self.on_disk[key] = local
            self._evict_disk()
        self.on_disk.move_to_end(key)
        return local, number

    def _evict(self):
        while self.cache_size is not None and len(self.loaded) > self.cache_size:
            (name, number), _ = self.loaded.popitem(last=False)
            log("model %s version %s evicted from memory (cache_size %d)" % (name or "(default)", number, self.cache_size))
            self.emit({"type": "model", "event": "evict", "model": name, "version": number, "seconds": 0.0})

    def _evict_disk(self):
        while self.disk_cache_size is not None and len(self.on_disk) > self.disk_cache_size:
            (name, number), path = self.on_disk.popitem(last=False)
            self.loaded.pop((name, number), None)
            shutil.rmtree(path, ignore_errors=True)
            log("model %s version %s removed from disk (disk_cache_size %d)" % (name or "(default)", number, self.disk_cache_size))
