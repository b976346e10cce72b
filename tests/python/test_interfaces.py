"""The inference file's import and the signature checks of each dialect:
what gets called with what, and the messages that name the file, the
function and the fix."""

import os
import shutil
import sys
import tempfile
import unittest

import support  # noqa: F401 - puts the worker package on sys.path

from _cortex_serve_worker.interfaces import ClassInterface, ModuleInterface, build_interface
from _cortex_serve_worker.user_module import InitFailure, load_user_module


class InterfaceTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="cortex-serve-interface-")
        self.saved_path = list(sys.path)
        self.count = 0

    def tearDown(self):
        sys.path[:] = self.saved_path
        shutil.rmtree(self.dir)

    def load(self, source, interface="init_metadata", metadata=None):
        """Writes `source` as a fresh module, imports it and builds its interface."""
        self.count += 1
        name = "inference_%d_%d" % (id(self), self.count)
        path = os.path.join(self.dir, name + ".py")
        with open(path, "w") as f:
            f.write(source)
        message = {
            "inference": path, "project_dir": self.dir, "interface": interface,
            "metadata": metadata if metadata is not None else {"m": 1},
        }
        try:
            return build_interface(load_user_module(message), message, name + ".py")
        finally:
            sys.modules.pop(name, None)

    def failure(self, source, interface="init_metadata"):
        with self.assertRaises(InitFailure) as caught:
            self.load(source, interface)
        return caught.exception

    def test_module_functions_get_the_metadata(self):
        interface = self.load(
            "state = {}\n"
            "def init(metadata):\n    state['init'] = metadata\n"
            "def predict(sample, metadata):\n    return [sample, metadata, state['init']]\n"
        )
        self.assertIsInstance(interface, ModuleInterface)
        interface.init("/ignored")
        self.assertEqual(interface.run(5), [5, {"m": 1}, {"m": 1}])
        self.assertFalse(interface.has_pre or interface.has_post)
        self.assertEqual(interface.pre(1), 1)
        self.assertEqual(interface.post(2), 2)

    def test_init_gets_the_model_path_when_the_dialect_passes_it(self):
        interface = self.load(
            "seen = []\n"
            "def init(model_path, metadata):\n    seen.append(model_path)\n"
            "def predict(sample, metadata):\n    return seen\n",
            interface="init_model_path",
        )
        interface.init("/models/m.bin")
        self.assertEqual(interface.run(None), ["/models/m.bin"])
        # init(metadata) is accepted there too.
        interface = self.load(
            "seen = []\ndef init(metadata):\n    seen.append(metadata)\n"
            "def predict(sample, metadata):\n    return seen\n",
            interface="init_model_path",
        )
        interface.init("/models/m.bin")
        self.assertEqual(interface.run(None), [{"m": 1}])

    def test_hooks_take_two_or_three_arguments(self):
        interface = self.load(
            "def pre_inference(sample, metadata):\n    return sample + 1\n"
            "def post_inference(prediction, signature, metadata):\n    return [prediction, signature]\n"
            "def predict(sample, metadata):\n    return sample * 10\n"
        )
        self.assertTrue(interface.has_pre and interface.has_post)
        self.assertEqual(interface.post(interface.run(interface.pre(1))), [20, None])

    def test_module_signature_failures_name_file_function_and_fix(self):
        missing = self.failure("x = 1\n")
        self.assertEqual(missing.phase, "signature")
        self.assertRegex(missing.error, r"^inference_\d+_\d+\.py defines no predict function: add `def predict\(sample, metadata\):`$")
        arity = self.failure("def predict(sample):\n    return 1\n")
        self.assertRegex(arity.error, r"predict must accept predict\(sample, metadata\); yours is predict\(sample\)$")
        hook = self.failure("def predict(s, m):\n    return 1\ndef pre_inference():\n    pass\n")
        self.assertRegex(
            hook.error,
            r"pre_inference must accept pre_inference\(sample, metadata\) or pre_inference\(sample, signature, metadata\)",
        )
        not_callable = self.failure("predict = 3\n")
        self.assertRegex(not_callable.error, r"\.py: predict is not a function$")

    def test_a_class_where_functions_are_expected_points_to_the_other_dialect(self):
        error = self.failure("import os\n\nclass PythonPredictor:\n    def predict(self, payload):\n        pass\n").error
        self.assertRegex(error, r"\.py:3 defines class PythonPredictor, the Cortex 0.12 interface")
        self.assertIn('predictor: {type: python, path: ', error)

    def test_the_class_interface_builds_the_class_with_the_config(self):
        interface = self.load(
            "class PythonPredictor:\n"
            "    def __init__(self, config):\n        self.config = config\n"
            "    def predict(self, payload):\n        return [payload, self.config]\n",
            interface="python_predictor", metadata={"k": "v"},
        )
        self.assertIsInstance(interface, ClassInterface)
        interface.init(None)
        self.assertEqual(interface.run(1), [1, {"k": "v"}])

    def test_class_signature_failures(self):
        cases = [
            ("def predict(sample, metadata):\n    pass\n",
             r"defines no class PythonPredictor: .*it defines a module-level predict\(\)"),
            ("class PythonPredictor:\n    pass\nclass PythonPredictor:\n    pass\n",
             r"defines class PythonPredictor 2 times, at lines 1, 3: keep one"),
            ("PythonPredictor = 1\n", r"PythonPredictor is not a class$"),
            ("class PythonPredictor:\n    def __init__(self):\n        pass\n    def predict(self, p):\n        pass\n",
             r":1: PythonPredictor.__init__ must accept \(self, config\); yours is __init__\(self\)"),
            ("class PythonPredictor:\n    def __init__(self, config):\n        pass\n",
             r"class PythonPredictor has no predict method: add `def predict\(self, payload\):`"),
            ("class PythonPredictor:\n    def __init__(self, config):\n        pass\n    def predict(self):\n        pass\n",
             r"PythonPredictor.predict must accept \(self, payload\); yours is predict\(self\)"),
        ]
        for source, pattern in cases:
            failure = self.failure(source, interface="python_predictor")
            self.assertEqual(failure.phase, "signature")
            self.assertRegex(failure.error, pattern)

    def test_an_import_that_raises_is_an_import_failure_with_its_traceback(self):
        failure = self.failure("import os\nraise ValueError('no model here')\n")
        self.assertEqual((failure.phase, failure.error), ("import", "ValueError: no model here"))
        self.assertIn("Traceback", failure.tb)
        syntax = self.failure("def predict(:\n")
        self.assertEqual(syntax.phase, "import")
        self.assertTrue(syntax.error.startswith("SyntaxError"))

    def test_the_inference_directory_comes_first_on_sys_path(self):
        with open(os.path.join(self.dir, "helper_for_interface_test.py"), "w") as f:
            f.write("VALUE = 42\n")
        try:
            interface = self.load("import helper_for_interface_test as h\ndef predict(s, m):\n    return h.VALUE\n")
            self.assertEqual(interface.run(None), 42)
            self.assertEqual(sys.path[0], self.dir)
        finally:
            sys.modules.pop("helper_for_interface_test", None)


if __name__ == "__main__":
    unittest.main()
