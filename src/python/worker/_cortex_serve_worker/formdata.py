"""Stand-ins for Starlette's FormData, UploadFile, QueryParams and Headers,
used only when Starlette is not installed: the same read interface
(`form["image"].file.read()`, `.filename`, `.content_type`, `getlist`,
case-insensitive headers), so predictors written for Cortex run unchanged."""

import urllib.parse


class _MultiDict:
    """An immutable mapping that keeps every value of a repeated key; `[key]` is the last."""

    def __init__(self, items=()):
        self._list = [(k, v) for k, v in items]
        self._dict = {k: v for k, v in self._list}

    def getlist(self, key):
        return [v for k, v in self._list if k == key]

    def multi_items(self):
        return list(self._list)

    def keys(self):
        return self._dict.keys()

    def values(self):
        return self._dict.values()

    def items(self):
        return self._dict.items()

    def get(self, key, default=None):
        return self._dict.get(key, default)

    def __getitem__(self, key):
        return self._dict[key]

    def __contains__(self, key):
        return key in self._dict

    def __iter__(self):
        return iter(self._dict)

    def __len__(self):
        return len(self._dict)

    def __eq__(self, other):
        return isinstance(other, _MultiDict) and sorted(self._list) == sorted(other._list)

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self._list)


class QueryParams(_MultiDict):
    """The query string's parameters, as Starlette parses them."""

    def __init__(self, query=""):
        if isinstance(query, str):
            super().__init__(urllib.parse.parse_qsl(query, keep_blank_values=True))
        else:
            super().__init__(query)


class Headers(_MultiDict):
    """Request headers: names are case-insensitive."""

    def __init__(self, pairs=()):
        super().__init__((k.lower(), v) for k, v in pairs)

    def getlist(self, key):
        return super().getlist(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return super().__contains__(key.lower())


class UploadFile:
    """A file of a multipart form: `file` (a binary file object), `filename`, `content_type`."""

    def __init__(self, file, filename=None, content_type="", size=None, headers=None):
        self.file = file
        self.filename = filename
        self.content_type = content_type
        self.size = size
        self.headers = headers if headers is not None else Headers()

    def __repr__(self):
        return "UploadFile(filename=%r, size=%r, content_type=%r)" % (self.filename, self.size, self.content_type)


class FormData(_MultiDict):
    """A parsed form: str fields and UploadFile files."""

    def close(self):
        for _, value in self.multi_items():
            if isinstance(value, UploadFile):
                value.file.close()
