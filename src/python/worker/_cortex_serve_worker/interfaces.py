"""How the worker calls one inference file, by the dialect of cortex.yaml:
module functions init(metadata) / init(model_path, metadata) and
predict(sample, metadata) with optional pre_inference/post_inference hooks,
or Cortex 0.12's class PythonPredictor(config).predict(payload). The file's
signatures are checked against the interface before `ready`, with messages
that name the file, the function and the fix. The request loop calls
Interface.init() once, then pre/run/post one by one."""

import ast
import inspect

from .user_module import InitFailure


def accepts(fn, count):
    try:
        inspect.signature(fn).bind(*([None] * count))
        return True
    except TypeError:
        return False
    except ValueError:  # no signature available (builtins): assume it does
        return True


def signature_text(name, fn):
    try:
        return "%s%s" % (name, inspect.signature(fn))
    except (TypeError, ValueError):
        return name


class Interface:
    """One loaded inference file: `init()` once, then `pre`, `run` and `post` per request.
    `has_pre`/`has_post`: whether `pre`/`post` do anything (the hot path skips them otherwise)."""

    has_pre = False
    has_post = False

    def init(self, model_path=None):
        pass

    def pre(self, sample):
        return sample

    def run(self, sample):
        raise NotImplementedError

    def post(self, prediction):
        return prediction


class ModuleInterface(Interface):
    """Module functions: `init(metadata)` or `init(model_path, metadata)`, `predict(sample, metadata)`, hooks."""

    def __init__(self, functions, metadata, init_arity, hook_arity):
        self.functions = functions
        self.metadata = metadata
        self.init_arity = init_arity
        self.hook_arity = hook_arity
        self.has_pre = "pre_inference" in functions
        self.has_post = "post_inference" in functions

    def init(self, model_path=None):
        if "init" in self.functions:
            if self.init_arity == 2:
                self.functions["init"](model_path, self.metadata)
            else:
                self.functions["init"](self.metadata)

    def _hook(self, name, value):
        fn = self.functions.get(name)
        if fn is None:
            return value
        if self.hook_arity[name] == 3:  # the TensorFlow/ONNX handler form: signature is None
            return fn(value, None, self.metadata)
        return fn(value, self.metadata)

    def pre(self, sample):
        return self._hook("pre_inference", sample)

    def run(self, sample):
        return self.functions["predict"](sample, self.metadata)

    def post(self, prediction):
        return self._hook("post_inference", prediction)


class ClassInterface(Interface):
    """Cortex 0.12: `PythonPredictor(config)` once, then `predict(payload)`."""

    def __init__(self, cls, config):
        self.cls = cls
        self.config = config
        self.instance = None

    def init(self, model_path=None):
        self.instance = self.cls(self.config)

    def run(self, sample):
        return self.instance.predict(sample)


def class_lines(path, name):
    """Lines where the module at `path` defines class `name` at top level."""
    try:
        with open(path, "rb") as source:
            tree = ast.parse(source.read(), path)
    except (OSError, SyntaxError, ValueError):
        return []
    return [node.lineno for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name]


def _function(module, relative, name, shapes, required, hint=""):
    """The module's function `name` and the first arity of `shapes` it accepts."""
    fn = getattr(module, name, None)
    if fn is None:
        if required:
            raise InitFailure(
                "signature",
                "%s defines no %s function: add `def %s:`%s" % (relative, name, shapes[0][1], hint),
            )
        return None, 0
    if not callable(fn):
        raise InitFailure("signature", "%s: %s is not a function" % (relative, name))
    for arity, _ in shapes:
        if accepts(fn, arity):
            return fn, arity
    wanted = " or ".join(shape for _, shape in shapes)
    raise InitFailure(
        "signature",
        "%s: %s must accept %s; yours is %s" % (relative, name, wanted, signature_text(name, fn)),
    )


def module_interface(module, message, relative):
    """Module functions; with `init_model_path` (Cortex 0.10/0.11) init also gets the model's path."""
    metadata = message.get("metadata") or {}
    with_model = message.get("interface") == "init_model_path"
    hint = ""
    lines = class_lines(message["inference"], "PythonPredictor") if not hasattr(module, "predict") else []
    if lines:
        hint = (
            " (%s:%d defines class PythonPredictor, the Cortex 0.12 interface, which this cortex.yaml "
            "does not use: declare the api with \"predictor: {type: python, path: %s}\", or move "
            "its __init__ body into init() and its predict method into predict(sample, metadata))"
            % (relative, lines[-1], relative)
        )
    predict, _ = _function(module, relative, "predict", [(2, "predict(sample, metadata)")], True, hint)
    init_shapes = [(2, "init(model_path, metadata)"), (1, "init(metadata)")] if with_model else [(1, "init(metadata)")]
    init, init_arity = _function(module, relative, "init", init_shapes, False)
    functions = {"predict": predict}
    hook_arity = {}
    if init is not None:
        functions["init"] = init
    for name, value in (("pre_inference", "sample"), ("post_inference", "prediction")):
        shapes = [(2, "%s(%s, metadata)" % (name, value)), (3, "%s(%s, signature, metadata)" % (name, value))]
        fn, arity = _function(module, relative, name, shapes, False)
        if fn is not None:
            functions[name] = fn
            hook_arity[name] = arity
    return ModuleInterface(functions, metadata, init_arity, hook_arity)


def class_interface(module, message, relative):
    """Cortex 0.12/0.13: one class PythonPredictor with __init__(self, config) and predict(self, payload)."""
    lines = class_lines(message["inference"], "PythonPredictor")
    if len(lines) > 1:
        raise InitFailure(
            "signature",
            "%s defines class PythonPredictor %d times, at lines %s: keep one (the last replaces the others)"
            % (relative, len(lines), ", ".join(str(n) for n in lines)),
        )
    cls = getattr(module, "PythonPredictor", None)
    if cls is None:
        hint = ""
        if callable(getattr(module, "predict", None)):
            hint = (
                " (it defines a module-level predict(): that is the interface of cortex.yaml's "
                "python.inference or of a predictor without type (Cortex 0.10/0.11); with "
                "\"type: python\" Cortex 0.12 calls PythonPredictor(config).predict(payload))"
            )
        raise InitFailure(
            "signature",
            "%s defines no class PythonPredictor: add `class PythonPredictor:` with "
            "`def __init__(self, config):` and `def predict(self, payload):`%s" % (relative, hint),
        )
    where = "%s:%d" % (relative, lines[0]) if lines else relative
    if not inspect.isclass(cls):
        raise InitFailure("signature", "%s: PythonPredictor is not a class" % where)
    if not accepts(cls, 1):
        raise InitFailure(
            "signature",
            "%s: PythonPredictor.__init__ must accept (self, config); yours is %s"
            % (where, signature_text("__init__", cls.__init__)),
        )
    predict = getattr(cls, "predict", None)
    if predict is None or not callable(predict):
        raise InitFailure(
            "signature", "%s: class PythonPredictor has no predict method: add `def predict(self, payload):`" % where
        )
    if not accepts(predict, 2):
        raise InitFailure(
            "signature",
            "%s: PythonPredictor.predict must accept (self, payload); yours is %s"
            % (where, signature_text("predict", predict)),
        )
    return ClassInterface(cls, message.get("metadata") or {})


def build_interface(module, message, relative):
    """Checks the file's signatures against the interface cortex.yaml asks for."""
    if message.get("interface") == "python_predictor":
        return class_interface(module, message, relative)
    if message.get("interface") in ("realtime_predictor", "realtime_handler"):
        from .process import log
        from .realtime import realtime_interface  # it builds on this module

        return realtime_interface(module, message, relative, log)
    return module_interface(module, message, relative)
