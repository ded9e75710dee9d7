"""The optional integrations (scikit-learn, ONNX, PyTorch, Numba for registered activations) stay optional:
importing fastnn loads none of them, and using one that is absent raises an ImportError naming the extra to
install.  Runs without any of them."""

import json
import subprocess
import sys
import tempfile

OPTIONAL = ("sklearn", "onnx", "onnxruntime", "torch", "numba")


def _run(script):
    # from an empty folder: run from the checkout, Python would import its unbuilt source tree instead
    with tempfile.TemporaryDirectory() as here:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=here)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_importing_fastnn_loads_no_optional_package():
    script = ("import json, sys; import fastnn, fastnn.functional, fastnn.nn, fastnn.models, fastnn.train, "
              "fastnn.data, fastnn.cli; "
              f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {OPTIONAL!r})))")
    assert json.loads(_run(script)) == []


def test_a_missing_optional_package_names_its_extra(tmp_path):
    """With each package made unimportable (a None entry in sys.modules), its entry point says what to install."""
    script = f"""
import json, sys
for name in {OPTIONAL!r}:
    sys.modules[name] = None
from fastnn.models import MLP
model = MLP([3, 2], ["softmax"])
out = {{}}
def attempt(key, call):
    try:
        call()
        out[key] = None
    except ImportError as exc:
        out[key] = str(exc)
def sk():
    import fastnn.sklearn  # noqa: F401
attempt("sklearn", sk)
def onnx():
    from fastnn.onnx import to_onnx
    to_onnx(model, {str(tmp_path / 'm.onnx')!r})
def torch():
    from fastnn.torch import to_torch
    to_torch(model)
attempt("onnx", onnx)
attempt("torch", torch)
def jit():
    import math, fastnn
    fastnn.register_activation("mine", math.tanh, math.cos)
attempt("jit", jit)
print(json.dumps(out))
"""
    messages = json.loads(_run(script))
    for extra, message in messages.items():
        assert message is not None and f"fastnn[{extra}]" in message, (extra, message)
    assert not (tmp_path / "m.onnx").exists()


def test_register_activation_is_reachable_without_loading_numba():
    """``fastnn.register_activation`` is the package's attribute; Numba loads only when it is called."""
    script = ("import json, sys, fastnn; f = fastnn.register_activation; "
              "import fastnn.functional as F, fastnn.nn; assert F.register_activation is f; "
              "print(json.dumps([f.__name__, 'numba' in sys.modules, 'register_activation' in dir(fastnn)]))")
    assert json.loads(_run(script)) == ["register_activation", False, True]
