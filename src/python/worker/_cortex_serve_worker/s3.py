"""The model of predictor.model when it is an s3:// URL: downloaded once into
the model directory, reused while the objects' ETags are unchanged. With
AWS credentials the requests are signed; when boto3 finds none, they go
unsigned (anonymous), which a public bucket answers."""

import hashlib
import json
import os
import tempfile

from .process import log
from .user_module import InitFailure, describe

LOCAL_FIX = "or download the model yourself and set predictor.model to its path"
CREDENTIALS_FIX = (
    "write ~/.aws/credentials for the user that runs cortex-serve (on EC2 with an "
    "instance role, set CORTEX_AWS_INSTANCE_METADATA=1 in the server's environment), "
)
NOT_FOUND_CODES = ("404", "NoSuchKey", "NotFound")


def resolve_model(message):
    """The local path of predictor.model: as given, or downloaded first when it is s3://."""
    model = message.get("model")
    if not model or not model.startswith("s3://"):
        return model or None
    cache = message.get("model_dir") or os.path.join(tempfile.gettempdir(), "cortex-serve-models")
    return download_s3(model, cache)


def _model_failure(url, problem, fix):
    return InitFailure("init", "predictor.model %s: %s: %s" % (url, problem, fix))


class _NotFound(Exception):
    """No object or prefix of the URL's name."""


def s3_client():
    """(client, signed): a boto3 S3 client, signed with the credentials boto3 finds without asking
    the network (the instance metadata only when enabled), unsigned without any. ImportError
    without boto3."""
    import boto3
    import botocore
    import botocore.config
    import botocore.session

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
    signed = session.get_credentials() is not None
    # CORTEX_S3_ENDPOINT_URL points at S3-compatible storage (MinIO, a local gateway).
    endpoint = os.environ.get("CORTEX_S3_ENDPOINT_URL") or None
    client = session.client("s3", endpoint_url=endpoint, config=botocore.config.Config(
        connect_timeout=5, read_timeout=60, retries={"max_attempts": 2},
        s3={"addressing_style": "path"} if endpoint else {},
        **({} if signed else {"signature_version": botocore.UNSIGNED}),
    ))
    return client, signed


def download_s3(url, cache_root):
    """Downloads an S3 object or prefix into `cache_root`; reused while its ETags are unchanged."""
    try:
        import botocore.exceptions

        client, signed = s3_client()
    except ImportError:
        raise _model_failure(
            url, "downloading it needs boto3, which this Python lacks",
            "apt-get install python3-boto3 (Debian) or add boto3 to requirements.txt, " + LOCAL_FIX,
        )
    # Without credentials, a failure says so: the anonymous try was the only one.
    anonymous = "" if signed else "boto3 found no AWS credentials, and the anonymous (unsigned) download failed: "
    try:
        path, fetched, reused = _download(client, url, cache_root, botocore.exceptions.ClientError)
    except _NotFound:
        raise _model_failure(
            url, anonymous + "no object or prefix of that name exists",
            "correct the URL" if signed else "correct the URL, or if the bucket is not public, "
            + CREDENTIALS_FIX + LOCAL_FIX,
        )
    except Exception as exc:  # noqa: BLE001 - botocore raises many kinds
        if signed:
            raise _model_failure(
                url, "download failed: %s" % describe(exc), "check the URL, the credentials and the network",
            )
        raise _model_failure(
            url, anonymous + describe(exc),
            "if the bucket is not public, " + CREDENTIALS_FIX + LOCAL_FIX,
        )
    log("model %s: %d file(s) downloaded, %d reused%s, in %s" % (
        url, fetched, reused, "" if signed else " (anonymously: no AWS credentials)", os.path.dirname(path),
    ))
    return path


def _download(client, url, cache_root, client_error):
    """(local path, files downloaded, files reused) of the object or prefix at `url`."""
    bucket, _, key = url[len("s3://"):].partition("/")
    target = os.path.join(cache_root, hashlib.sha256(url.encode("utf-8")).hexdigest()[:16])
    os.makedirs(target, exist_ok=True)
    objects = _s3_objects(client, bucket, key, client_error)
    if not objects:
        raise _NotFound()
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
    single = len(objects) == 1 and objects[0][1] == key
    path = os.path.join(target, objects[0][0]) if single else os.path.join(target, _prefix_name(key))
    return path, fetched, len(objects) - fetched


def _prefix_name(key):
    return key.rstrip("/").rsplit("/", 1)[-1] or "model"


def _s3_objects(client, bucket, key, client_error):
    """(local name, key, etag) of the object `key`, or of every object under the prefix `key/`."""
    if key and not key.endswith("/"):
        try:
            head = client.head_object(Bucket=bucket, Key=key)
            return [(key.rsplit("/", 1)[-1], key, head.get("ETag", ""))]
        except client_error as exc:
            if exc.response.get("Error", {}).get("Code") not in NOT_FOUND_CODES:
                raise
    prefix = key.rstrip("/") + "/" if key else ""
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            rel = item["Key"][len(prefix):]
            if rel and not rel.endswith("/"):
                found.append((os.path.join(_prefix_name(key), rel), item["Key"], item.get("ETag", "")))
    return found


def _multi_client():
    try:
        return s3_client()[0]
    except ImportError:
        raise ValueError(
            "s3:// models need boto3, which this Python lacks: apt-get install python3-boto3 (Debian) "
            "or add boto3 to requirements.txt, or copy the models to a local directory"
        )


def list_prefix(url):
    """The versions under an s3:// model directory (multi-model): {version: [(relative path, key)]};
    objects not under a numbered folder make version "1" (an unversioned model)."""
    client = _multi_client()
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
    """Downloads `objects` ((relative path, key) pairs in the bucket of `url`) into the directory `target`."""
    client = _multi_client()
    bucket = url[len("s3://"):].partition("/")[0]
    partial = "%s.part-%d" % (target, os.getpid())
    for rel, key in objects:
        path = os.path.join(partial, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        client.download_file(bucket, key, path)
    if os.path.isdir(target):
        import shutil

        shutil.rmtree(target)
    os.replace(partial, target)
    log("model %s: %d file(s) downloaded into %s" % (url, len(objects), target))
