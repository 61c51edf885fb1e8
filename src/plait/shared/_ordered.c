/* plait.shared._ordered: the shared log's published word with explicit memory order.
 *
 * Why C: a reader loads the published word without a lock and then reads the log records
 * below it; the writer stores the records first and the word last. On x86-64 (TSO) plain
 * loads and stores keep that order, so plait.shared reads the word through a memoryview
 * there. On weakly ordered CPUs (arm64, POWER, RISC-V) the reader needs an *acquire* load
 * and the writer a *release* store, which Python cannot express: ``Word`` is a view of
 * one aligned int64 whose ``w[0]`` is ``atomic_load_explicit(..., memory_order_acquire)``
 * and ``w[0] = v`` is ``atomic_store_explicit(..., memory_order_release)`` (the same
 * subscript API as the memoryview, so the log's code is one). Without this module
 * plait.shared refuses to run on such a CPU (see plait/shared/_log.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    _Atomic int64_t *word;
} WordObject;

static int
word_init(WordObject *self, PyObject *args, PyObject *kwds)
{
    PyObject *source;
    if (!PyArg_ParseTuple(args, "O:Word", &source)) {
        return -1;
    }
    if (self->word != NULL) {
        PyErr_SetString(PyExc_TypeError, "Word is initialised once");
        return -1;
    }
    if (PyObject_GetBuffer(source, &self->view, PyBUF_WRITABLE) < 0) {
        return -1;
    }
    if (self->view.len < (Py_ssize_t)sizeof(int64_t) ||
        ((uintptr_t)self->view.buf % _Alignof(int64_t)) != 0) {
        PyBuffer_Release(&self->view);
        PyErr_SetString(PyExc_ValueError, "Word needs an aligned buffer of at least 8 bytes");
        return -1;
    }
    self->word = (_Atomic int64_t *)self->view.buf;
    return 0;
}

static void
word_dealloc(WordObject *self)
{
    if (self->word != NULL) {
        self->word = NULL;
        PyBuffer_Release(&self->view);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
check_index(WordObject *self, PyObject *index)
{
    if (self->word == NULL) {
        PyErr_SetString(PyExc_ValueError, "Word was not initialised");
        return -1;
    }
    Py_ssize_t i = PyNumber_AsSsize_t(index, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (i != 0) {
        PyErr_SetString(PyExc_IndexError, "a Word has one item: [0]");
        return -1;
    }
    return 0;
}

static PyObject *
word_load(WordObject *self, PyObject *index)
{
    if (check_index(self, index) < 0) {
        return NULL;
    }
    return PyLong_FromLongLong(atomic_load_explicit(self->word, memory_order_acquire));
}

static int
word_store(WordObject *self, PyObject *index, PyObject *value)
{
    if (check_index(self, index) < 0) {
        return -1;
    }
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "a Word's item cannot be deleted");
        return -1;
    }
    long long v = PyLong_AsLongLong(value);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    atomic_store_explicit(self->word, (int64_t)v, memory_order_release);
    return 0;
}

static Py_ssize_t
word_len(WordObject *self)
{
    return 1;
}

static PyMappingMethods word_mapping = {
    (lenfunc)word_len,
    (binaryfunc)word_load,
    (objobjargproc)word_store,
};

static PyTypeObject WordType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "plait.shared._ordered.Word",
    .tp_basicsize = sizeof(WordObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Word(buffer): w[0] loads the int64 at the buffer's start with acquire order; "
              "w[0] = v stores it with release order.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)word_init,
    .tp_dealloc = (destructor)word_dealloc,
    .tp_as_mapping = &word_mapping,
};

static struct PyModuleDef ordered_module = {
    PyModuleDef_HEAD_INIT, "plait.shared._ordered",
    "The shared log's published word with acquire/release order (see "
    "plait/shared/_log.py).",
    -1, NULL,
};

PyMODINIT_FUNC
PyInit__ordered(void)
{
    if (PyType_Ready(&WordType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&ordered_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&WordType);
    if (PyModule_AddObject(m, "Word", (PyObject *)&WordType) < 0) {
        Py_DECREF(&WordType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
