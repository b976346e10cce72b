"""The model of predictor.model when it is an s3:// URL: downloaded once into
the model directory, reused while the objects' ETags are unchanged."""

import hashlib
import json
import os
import tempfile

from .process import log
from .user_module import InitFailure, describe


def resolve_model(message):
    """The local path of predictor.model: as given, or downloaded first when it is s3://."""
    model = message.get("model")
    if not model or not model.startswith("s3://"):
        return model or None
    cache = message.get("model_dir") or os.path.join(tempfile.gettempdir(), "cortex-serve-models")
    return download_s3(model, cache)


def _model_failure(url, problem, fix):
    return InitFailure("init", "predictor.model %s: %s: %s" % (url, problem, fix))


class S3Unavailable(Exception):
    """No client for S3: boto3 missing, or no credentials (problem, fix)."""

    def __init__(self, problem, fix):
        super().__init__("%s: %s" % (problem, fix))
        self.problem = problem
        self.fix = fix


def s3_client(local_fix):
    """A boto3 S3 client that never asks the instance metadata unless enabled; S3Unavailable otherwise."""
    try:
        import boto3
        import botocore.config
        import botocore.session
    except ImportError:
        raise S3Unavailable(
            "downloading it needs boto3, which this Python lacks",
            "apt-get install python3-boto3 (Debian) or add boto3 to requirements.txt, " + local_fix,
        )
    core = botocore.session.get_session()
    if os.environ.get("CORTEX_AWS_INSTANCE_METADATA") != "1":
        # Look for credentials without asking the network: the EC2 instance
        # metadata and container endpoints are only asked when enabled.
        resolver = core.get_component("credential_provider")
        for provider in ("iam-role", "container-role"):
            try:
                resolver.remove(provider)
            except (AttributeError, KeyError, ValueError):
                pass
    session = boto3.Session(botocore_session=core)
    if session.get_credentials() is None:
        raise S3Unavailable(
            "boto3 found no AWS credentials to download it",
            "write ~/.aws/credentials for the user that runs cortex-serve (on EC2 with an "
            "instance role, set CORTEX_AWS_INSTANCE_METADATA=1 in the server's environment), " + local_fix,
        )
    # CORTEX_S3_ENDPOINT_URL points at S3-compatible storage (MinIO, a local gateway).
    endpoint = os.environ.get("CORTEX_S3_ENDPOINT_URL") or None
    return session.client("s3", endpoint_url=endpoint, config=botocore.config.Config(
        connect_timeout=5, read_timeout=60, retries={"max_attempts": 2},
        s3={"addressing_style": "path"} if endpoint else {},
    ))


def download_s3(url, cache_root):
    """Downloads an S3 object or prefix into `cache_root`; reused while its ETags are unchanged."""
    local_fix = "or download the model yourself and set predictor.model to its path"
    try:
        client = s3_client(local_fix)
    except S3Unavailable as exc:
        raise _model_failure(url, exc.problem, exc.fix)
    import botocore.exceptions

    bucket, _, key = url[len("s3://"):].partition("/")
    target = os.path.join(cache_root, hashlib.sha256(url.encode("utf-8")).hexdigest()[:16])
    os.makedirs(target, exist_ok=True)
    try:
        objects = _s3_objects(client, bucket, key, botocore.exceptions.ClientError)
        if not objects:
            raise _model_failure(url, "no object or prefix of that name exists", "correct the URL")
        manifest_path = os.path.join(target, ".etags.json")
        try:
            with open(manifest_path) as f:
                manifest = json.load(f)
        except (OSError, ValueError):
            manifest = {}
        fetched = 0
        for name, object_key, etag in objects:
            path = os.path.join(target, name)
            if manifest.get(name) == etag and os.path.exists(path):
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            partial = "%s.part-%d" % (path, os.getpid())
            client.download_file(bucket, object_key, partial)
            os.replace(partial, path)
            manifest[name] = etag
            fetched += 1
        partial = "%s.part-%d" % (manifest_path, os.getpid())
        with open(partial, "w") as f:
            json.dump(manifest, f)
        os.replace(partial, manifest_path)
    except InitFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - botocore raises many kinds
        raise _model_failure(url, "download failed: %s" % describe(exc), "check the URL, the credentials and the network")
    log("model %s: %d file(s) downloaded, %d reused, in %s" % (url, fetched, len(objects) - fetched, target))
    single = len(objects) == 1 and objects[0][1] == key
    return os.path.join(target, objects[0][0]) if single else os.path.join(target, _prefix_name(key))


def _prefix_name(key):
    return key.rstrip("/").rsplit("/", 1)[-1] or "model"


def _s3_objects(client, bucket, key, client_error):
    """(local name, key, etag) of the object `key`, or of every object under the prefix `key/`."""
    if key and not key.endswith("/"):
        try:
            head = client.head_object(Bucket=bucket, Key=key)
            return [(key.rsplit("/", 1)[-1], key, head.get("ETag", ""))]
        except client_error as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
    prefix = key.rstrip("/") + "/" if key else ""
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            rel = item["Key"][len(prefix):]
            if rel and not rel.endswith("/"):
                found.append((os.path.join(_prefix_name(key), rel), item["Key"], item.get("ETag", "")))
    return found


def list_prefix(url):
    """The versions under an s3:// model directory: {version: [(relative path, key)]}; objects not
    under a numbered folder make version "1" (an unversioned model)."""
    client = s3_client("or copy the models to a local directory")
    bucket, _, key = url[len("s3://"):].partition("/")
    prefix = key.rstrip("/") + "/" if key else ""
    versions = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            rel = item["Key"][len(prefix):]
            if not rel or rel.endswith("/"):
                continue
            head, _, rest = rel.partition("/")
            if head.isdigit() and rest:
                versions.setdefault(head, []).append((rest, item["Key"]))
            else:
                versions.setdefault("1", []).append((rel, item["Key"]))
    return versions


def download_keys(url, objects, target):
    """Downloads `objects` ((relative path, key) pairs of the bucket of `url`) into `target`."""
    client = s3_client("or copy the models to a local directory")
    bucket = url[len("s3://"):].partition("/")[0]
    partial_dir = "%s.part-%d" % (target, os.getpid())
    for rel, key in objects:
        path = os.path.join(partial_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        client.download_file(bucket, key, path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.isdir(target):
        import shutil

        shutil.rmtree(target)
    os.replace(partial_dir, target)
    log("model %s: %d file(s) downloaded into %s" % (url, len(objects), target))
