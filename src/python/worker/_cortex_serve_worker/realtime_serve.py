"""The request loop's two answer paths for the Cortex 0.17+ PythonPredictor
(interface `realtime_predictor`): the sample is a request envelope whose
body is parsed by Content-Type (payloads.py), predict gets its arguments by
name, and the answer goes out as an answer envelope (realtime.py);
post_predict runs after it. Installed on the Worker at start, in place of
its JSON paths, so the other dialects' hot path is untouched."""

from .answers import PLAIN_TYPES, SERIALIZE_ERRORS, batch_shape_error, is_stream
from .payloads import PayloadError, headers_of, parse_payload, query_params, read_request
from .process import flush_output, log
from .protocol import error_frame
from .realtime import after_answer, pack_answer, split_callback
from .serve import sample_error, serialize_error, too_large_error
from .tracing import enter_batch


def parse_request(worker, request_id, raw, debug):
    """(payload, query_params, headers) of a request envelope; PayloadError for a body that does not parse."""
    content_type, query, pairs, body = read_request(raw)
    if debug:
        worker.trace(request_id, "sample (%s)" % (content_type or "no content type"), body)
    interface = worker.interface
    # Each argument is built only when a method declares it.
    payload = parse_payload(content_type, body) if interface.wants_payload else None
    return (
        payload,
        query_params(query) if interface.wants_query else None,
        headers_of(pairs) if interface.wants_headers else None,
    )


def predict(worker, job):
    request_id = job.ids[0]
    debug = job.debug
    try:
        sample = parse_request(worker, request_id, job.sample, debug)
    except (PayloadError, ValueError) as exc:
        return worker.channel.send(sample_error(request_id, exc))
    interface = worker.interface
    try:
        prediction = worker.control.call(interface.run, sample)
    except BaseException as exc:  # noqa: BLE001 - SystemExit too costs one request only
        if isinstance(exc, KeyboardInterrupt):
            raise
        return worker.channel.send(worker.user_error(request_id, exc))
    prediction, callback = split_callback(interface, prediction)
    if type(prediction) not in PLAIN_TYPES and is_stream(prediction):
        return worker.stream(request_id, prediction, debug)
    try:
        body = pack_answer(prediction)
    except SERIALIZE_ERRORS as exc:
        return worker.channel.send(serialize_error(request_id, "the prediction", exc))
    if debug:
        worker.trace(request_id, "prediction", body)
    try:
        worker.channel.send_result(request_id, body)
    except OverflowError as exc:
        return worker.channel.send(too_large_error(request_id, exc))
    # After the answer went out: it never waits for post_predict (or a Handler's callback), nor fails with it.
    if interface.post_names is not None:
        flush_output()
        after_answer("post_predict", lambda: interface.post_predict(prediction, sample), log)
    elif callback is not None:
        flush_output()
        after_answer("the callback of handle_post", callback, log)


def predict_batch(worker, job):
    """server_side_batching: predict gets lists (payload=[...], query_params=[...], headers=[...])."""
    debug = job.debug
    interface = worker.interface
    answers = {}
    ids = []
    samples = []
    for request_id, raw in zip(job.ids, job.samples):
        try:
            samples.append(parse_request(worker, request_id, raw, debug))
            ids.append(request_id)
        except (PayloadError, ValueError) as exc:
            answers[request_id] = sample_error(request_id, exc)
    if job.trace is not None:
        enter_batch(job, ids)
    if ids:
        columns = tuple(list(column) for column in zip(*samples))
        try:
            predictions = worker.control.call(interface.run, columns)
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            first = worker.user_error(ids[0], exc)
            answers.update((i, dict(first, id=i)) for i in ids)
        else:
            wrong = batch_shape_error(predictions, len(ids))
            if wrong is not None:
                log("api %s: %s" % (worker.api, wrong))
                answers.update((i, error_frame(i, "predict", wrong, "")) for i in ids)
            else:
                for request_id, prediction in zip(ids, predictions):
                    try:
                        answers[request_id] = worker.channel.pack_result(request_id, pack_answer(prediction))
                    except SERIALIZE_ERRORS as exc:
                        answers[request_id] = serialize_error(request_id, "the prediction", exc)
                    except OverflowError as exc:
                        answers[request_id] = too_large_error(request_id, exc)
    worker.channel.send_many([answers[i] for i in job.ids])
