/* What the running CPU can do, asked before any copy of fastnn's core is loaded.

   Compiled with the compiler's baseline flags (no -march), so that it runs on any CPU of its
   architecture; fastnn._kernels uses it to choose the copy of the core to load (_fastnn_core_v2, _v3,
   _v4) and to refuse, in one line, a copy built for more than the CPU has. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define FNN_X86 1
#else
#define FNN_X86 0
#endif

#if FNN_X86
/* Each feature the x86-64 levels add (psABI); __builtin_cpu_supports also checks that the operating
   system saves the AVX and AVX-512 registers. */
static const char* const fnn_v2[] = {"sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", NULL};
static const char* const fnn_v3[] = {"avx", "avx2", "bmi", "bmi2", "fma", "f16c", "lzcnt", "movbe", NULL};
static const char* const fnn_v4[] = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", NULL};

/* 1: the CPU has the feature; 0: it does not, or the name is not one fastnn knows.  The names are those of
   the features a copy of the core may be compiled to use (_team.h's marker lists them). */
static int fnn_supports(const char* name) {
    /* __builtin_cpu_supports needs a string literal: one case per name */
#define FNN_F(s) if (strcmp(name, s) == 0) return __builtin_cpu_supports(s) != 0
    FNN_F("sse3"); FNN_F("ssse3"); FNN_F("sse4.1"); FNN_F("sse4.2"); FNN_F("popcnt");
    FNN_F("avx"); FNN_F("avx2"); FNN_F("bmi"); FNN_F("bmi2"); FNN_F("fma"); FNN_F("fma4"); FNN_F("f16c");
    FNN_F("lzcnt"); FNN_F("movbe"); FNN_F("sse4a"); FNN_F("xop");
    FNN_F("avx512f"); FNN_F("avx512bw"); FNN_F("avx512cd"); FNN_F("avx512dq"); FNN_F("avx512vl");
    FNN_F("avx512vnni"); FNN_F("avx512bf16"); FNN_F("avx512vbmi"); FNN_F("avx512vbmi2"); FNN_F("avx512ifma");
    FNN_F("avx512bitalg"); FNN_F("avx512vpopcntdq"); FNN_F("avx512fp16"); FNN_F("gfni"); FNN_F("vaes");
    FNN_F("vpclmulqdq");
#undef FNN_F
    return 0;
}

static int fnn_all(const char* const* names) {
    for (; *names; names++)
        if (!fnn_supports(*names))
            return 0;
    return 1;
}
#endif

static PyObject* cpu_level(PyObject* self, PyObject* unused) {
#if FNN_X86
    __builtin_cpu_init();
    if (!fnn_all(fnn_v2))
        return PyUnicode_FromString("x86-64");
    if (!fnn_all(fnn_v3))
        return PyUnicode_FromString("x86-64-v2");
    if (!fnn_all(fnn_v4))
        return PyUnicode_FromString("x86-64-v3");
    return PyUnicode_FromString("x86-64-v4");
#else
    return PyUnicode_FromString("generic");
#endif
}

static PyObject* cpu_supports(PyObject* self, PyObject* arg) {
    const char* name = PyUnicode_AsUTF8(arg);
    if (name == NULL)
        return NULL;
#if FNN_X86
    __builtin_cpu_init();
    return PyBool_FromLong(fnn_supports(name));
#else
    return PyBool_FromLong(0);
#endif
}

static PyObject* cpu_features(PyObject* self, PyObject* unused) {
    PyObject* out = PyDict_New();
#if FNN_X86
    const char* const* lists[] = {fnn_v2, fnn_v3, fnn_v4};
    int i;
    const char* const* n;
    if (out == NULL)
        return NULL;
    __builtin_cpu_init();
    for (i = 0; i < 3; i++)
        for (n = lists[i]; *n; n++)
            if (PyDict_SetItemString(out, *n, fnn_supports(*n) ? Py_True : Py_False) < 0) {
                Py_DECREF(out);
                return NULL;
            }
#endif
    return out;
}

static PyMethodDef cpu_methods[] = {
    {"level", cpu_level, METH_NOARGS,
     "The highest x86-64 level of the running CPU ('x86-64', 'x86-64-v2', 'x86-64-v3', 'x86-64-v4'), or "
     "'generic' on another architecture."},
    {"features", cpu_features, METH_NOARGS, "The features that make up the x86-64 levels: name -> bool."},
    {"supports", cpu_supports, METH_O,
     "Whether the running CPU has the instruction-set extension of that name (False for a name fastnn does "
     "not know)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cpu_module = {PyModuleDef_HEAD_INIT, "_cpu",
                                        "What the running CPU can do (fastnn chooses its core by it).", -1,
                                        cpu_methods};

PyMODINIT_FUNC PyInit__cpu(void) { return PyModule_Create(&cpu_module); }
