import csv
import io
import statistics


class PythonPredictor:
    def __init__(self, config):
        self.max_rows = int(config["max_rows"])

    def predict(self, payload, query_params):
        # A multipart/form-data request arrives as a form: str fields, UploadFile files.
        upload = payload["data"]
        column = payload.get("column") or query_params.get("column")
        text = upload.file.read().decode("utf-8")
        rows = list(csv.DictReader(io.StringIO(text)))[: self.max_rows]
        if not rows or column not in rows[0]:
            columns = ", ".join(rows[0]) if rows else "none"
            raise ValueError("%s has no column %r (its columns: %s)" % (upload.filename, column, columns))
        values = [float(row[column]) for row in rows if row[column] not in ("", None)]
        return {
            "file": upload.filename,
            "content_type": upload.content_type,
            "column": column,
            "count": len(values),
            "mean": round(statistics.fmean(values), 4),
            "min": min(values),
            "max": max(values),
        }
