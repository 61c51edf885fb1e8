/* plait._ipc._robust: a process-shared *robust* pthread mutex living in shared memory.
 *
 * Why C: a shared queue takes this lock twice per item; through ctypes each call costs
 * about a microsecond, here about as much as a SemLock's (tens of nanoseconds). The pure
 * Python fallback (plait/_ipc/robust.py) calls the same glibc functions through ctypes on
 * the same memory, so processes with and without this module share one lock.
 *
 * Every function takes the mutex's address (an int: the mapping stays alive as long as the
 * Python object that owns it) and returns 0 or an errno value; only ``timedlock`` releases
 * the GIL (it may sleep).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <structmember.h>

#include "_robust_api.h"

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield" ::: "memory")
#else
#define CPU_RELAX() __asm__ __volatile__("" ::: "memory")
#endif
#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
/* How often take/give look at a busy mutex before they give up: it is held for tens of
 * nanoseconds (a take, a give, a failed try), so a short look beats the caller's slow path. */
#define BUSY_LOOKS 200

static pthread_mutex_t *
as_mutex(PyObject *addr)
{
    void *p = PyLong_AsVoidPtr(addr);
    if (p == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (p == NULL) {
        PyErr_SetString(PyExc_ValueError, "null mutex address");
    }
    return (pthread_mutex_t *)p;
}

static PyObject *
robust_init(PyObject *module, PyObject *addr)
{
    pthread_mutex_t *m = as_mutex(addr);
    if (m == NULL) {
        return NULL;
    }
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc == 0) {
        rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    }
    if (rc == 0) {
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    }
    if (rc == 0) {
        rc = pthread_mutex_init(m, &attr);
    }
    pthread_mutexattr_destroy(&attr);
    return PyLong_FromLong(rc);
}

static PyObject *
robust_trylock(PyObject *module, PyObject *addr)
{
    pthread_mutex_t *m = as_mutex(addr);
    if (m == NULL) {
        return NULL;
    }
    return PyLong_FromLong(pthread_mutex_trylock(m));
}

static PyObject *
robust_unlock(PyObject *module, PyObject *addr)
{
    pthread_mutex_t *m = as_mutex(addr);
    if (m == NULL) {
        return NULL;
    }
    return PyLong_FromLong(pthread_mutex_unlock(m));
}

static PyObject *
robust_consistent(PyObject *module, PyObject *addr)
{
    pthread_mutex_t *m = as_mutex(addr);
    if (m == NULL) {
        return NULL;
    }
    return PyLong_FromLong(pthread_mutex_consistent(m));
}

static PyObject *
robust_timedlock(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "timedlock(address, seconds)");
        return NULL;
    }
    pthread_mutex_t *m = as_mutex(args[0]);
    if (m == NULL) {
        return NULL;
    }
    double seconds = PyFloat_AsDouble(args[1]);
    if (seconds == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (seconds < 0) {
        seconds = 0;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long long whole = (long long)seconds;
    until.tv_sec += (time_t)whole;
    until.tv_nsec += (long)((seconds - (double)whole) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec += 1;
        until.tv_nsec -= 1000000000L;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = pthread_mutex_timedlock(m, &until);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(rc);
}

/* A shared Lock's uncontended take and give, each one call (a shared ``with lock:`` made
 * four -- trylock, a read, a store, unlock -- and cost 2.2x multiprocessing.Lock's).
 * ``holder`` is the lock's holder word (0: free), ``table`` its wait table's first word
 * (how many wait). They answer 1 (done), 0 (not here: held / waiters to ring, so the
 * caller takes its slow path under the mutex) or -errno from trylock (EBUSY, EOWNERDEAD:
 * the caller settles it). The words are written only with the mutex held, as in Python. */
static int
as_words(PyObject *const *args, Py_ssize_t nargs, const char *form, pthread_mutex_t **m,
         long long **holder)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, form);
        return -1;
    }
    *m = as_mutex(args[0]);
    if (*m == NULL) {
        return -1;
    }
    *holder = (long long *)PyLong_AsVoidPtr(args[1]);
    if (*holder == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "null word address");
        }
        return -1;
    }
    return 0;
}

/* trylock that looks again a little while the mutex is busy, reading (not writing) its
 * lock word -- glibc's first int, 0 when free -- so that many processes looking at once
 * do not bounce its cache line between cores. */
static int
trylock_looking(pthread_mutex_t *m, const long long *held)
{
    int rc = pthread_mutex_trylock(m);
    for (int i = 0; rc == EBUSY && i < BUSY_LOOKS; i++) {
        CPU_RELAX();
        if (held != NULL && LOAD(held) != 0) {
            return -1; /* taken meanwhile: the caller answers "held" */
        }
        if (LOAD((int *)m) == 0) {
            rc = pthread_mutex_trylock(m);
        }
    }
    return rc;
}

/* The take and give themselves, also exported to plait._fastlock through the capsule
 * ``_C_API`` (a shared Lock's ``_inner`` there calls them with no Python frame between). */
static int
take_word(pthread_mutex_t *m, long long *holder, long long tag)
{
    /* Held: answer without touching the mutex (a crowd of waiters trying it would slow
     * the holder's give, which needs it). The answer under the mutex is the true one. */
    if (LOAD(holder) != 0) {
        return 0;
    }
    int rc = trylock_looking(m, holder);
    if (rc == -1) {
        return 0;
    }
    if (rc != 0) {
        return -rc;
    }
    int done = *holder == 0;
    if (done) {
        *holder = tag;
    }
    pthread_mutex_unlock(m);
    return done;
}

static int
give_word(pthread_mutex_t *m, long long *holder, long long *table)
{
    /* Waiters announced: the slow path rings one under the mutex -- no try here first (a
     * release that meets waiters may pass through here more than once on its way there). */
    if (LOAD(table) != 0) {
        return 0;
    }
    int rc = trylock_looking(m, NULL);
    if (rc != 0) {
        return -rc;
    }
    int done = *holder != 0 && *table == 0;
    if (done) {
        *holder = 0;
    }
    pthread_mutex_unlock(m);
    return done;
}

/* A shared Semaphore's uncontended take and give (SemPort, below): its state words (VALUE
 * at 1, INITIAL at 2) and this process's ``[tag, count]`` slot, changed as the Python paths
 * change them (plait/_sync/_shared.py), in the same order -- counted, then taken; freed,
 * then un-counted. */
enum { SEM_VALUE = 1, SEM_INITIAL = 2 };

/* This process's tag (plait/_sync/_robust.py: start time << 32 | pid), which the C takes
 * write as the holder; 0 until set_process_tag() (then the takes decline: Python decides). */
static long long process_tag = 0;

static PyObject *
robust_set_process_tag(PyObject *module, PyObject *tag)
{
    long long t = PyLong_AsLongLong(tag);
    if (t == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (t == 0) {
        PyErr_SetString(PyExc_ValueError, "a process tag is never 0 (0: free)");
        return NULL;
    }
    process_tag = t;
    Py_RETURN_NONE;
}

/* SemPort(owner, mutex, words, table, slots): a shared Semaphore's take and give in C over
 * its segment (``owner``, its SemaphoreBackend, keeps the segment mapped). ``slot``: this
 * process's slot index once the Python path has claimed it (-1: not yet); a slot that no
 * longer carries this process's tag (a forked child) sends the call to Python. A take or
 * give answers 1 (done) or 0 (not here: the Python path decides); it never leaves the mutex
 * held -- a dead holder's is repaired by ``owner.settle()`` first. */
typedef struct {
    PyObject_HEAD
    pthread_mutex_t *mutex;
    long long *words;
    long long *table;
    long long *slots;
    int slot;
    PyObject *owner;
} SemPortObject;

static void *
as_word(PyObject *addr)
{
    void *p = PyLong_AsVoidPtr(addr);
    if (p == NULL && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "null word address");
    }
    return p;
}

static PyObject *
semport_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *owner, *m, *w, *t, *sl;
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "SemPort() takes positional arguments only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OOOOO:SemPort", &owner, &m, &w, &t, &sl)) {
        return NULL;
    }
    pthread_mutex_t *mutex = as_mutex(m);
    long long *words = mutex ? as_word(w) : NULL;
    long long *table = words ? as_word(t) : NULL;
    long long *slots = table ? as_word(sl) : NULL;
    if (slots == NULL) {
        return NULL;
    }
    SemPortObject *self = (SemPortObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->mutex = mutex;
    self->words = words;
    self->table = table;
    self->slots = slots;
    self->slot = -1;
    Py_INCREF(owner);
    self->owner = owner;
    return (PyObject *)self;
}

static int
semport_traverse(SemPortObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->owner);
    return 0;
}

static int
semport_clear(SemPortObject *self)
{
    self->slot = -1; /* (cleared: every call declines from now on) */
    Py_CLEAR(self->owner);
    return 0;
}

static void
semport_dealloc(SemPortObject *self)
{
    PyObject_GC_UnTrack(self);
    semport_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* This process's slot, if it is known and still ours. */
static inline long long *
semport_slot(SemPortObject *self)
{
    if (self->slot < 0 || process_tag == 0 || self->owner == NULL) {
        return NULL;
    }
    long long *slot = self->slots + 2 * self->slot;
    return LOAD(slot) == process_tag ? slot : NULL;
}

/* trylock's answer when it is not 0: busy (0: not here), or a dead holder's mutex, which
 * this thread holds now -- repaired and freed by the backend (0), or an error raised there
 * (-1). */
static int
semport_settle(SemPortObject *self, int rc)
{
    if (rc != EOWNERDEAD) {
        return 0;
    }
    PyObject *r = PyObject_CallMethod(self->owner, "settle", "i", rc);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static PyObject *
semport_take(SemPortObject *self, PyObject *Py_UNUSED(ignored))
{
    long long *slot = semport_slot(self);
    if (slot == NULL || LOAD(&self->words[SEM_VALUE]) <= 0) {
        return PyLong_FromLong(0);
    }
    int rc = trylock_looking(self->mutex, NULL);
    if (rc != 0) {
        return semport_settle(self, rc) < 0 ? NULL : PyLong_FromLong(0);
    }
    int done = self->words[SEM_VALUE] > 0 && slot[0] == process_tag;
    if (done) {
        slot[1] += 1;
        self->words[SEM_VALUE] -= 1;
    }
    pthread_mutex_unlock(self->mutex);
    return PyLong_FromLong(done);
}

static PyObject *
semport_give(SemPortObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "give(n, bounded)");
        return NULL;
    }
    long long n = PyLong_AsLongLong(args[0]);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int bounded = PyObject_IsTrue(args[1]);
    if (bounded < 0) {
        return NULL;
    }
    long long *slot = semport_slot(self);
    if (slot == NULL || n < 1 || LOAD(self->table) != 0) { /* (waiters: the slow path) */
        return PyLong_FromLong(0); /* (the Python path says what is wrong) */
    }
    int rc = trylock_looking(self->mutex, NULL);
    if (rc != 0) {
        return semport_settle(self, rc) < 0 ? NULL : PyLong_FromLong(0);
    }
    long long *words = self->words;
    int done = *self->table == 0 && slot[0] == process_tag &&
               (!bounded || words[SEM_VALUE] + n <= words[SEM_INITIAL]);
    if (done) {
        words[SEM_VALUE] += n;
        slot[1] -= n;
    }
    pthread_mutex_unlock(self->mutex);
    return PyLong_FromLong(done);
}

static PyMethodDef semport_methods[] = {
    {"take", (PyCFunction)semport_take, METH_NOARGS,
     "take() -> 1 taken, 0 not here (no permit free, no slot yet, the mutex busy)."},
    {"give", (PyCFunction)(void (*)(void))semport_give, METH_FASTCALL,
     "give(n, bounded) -> 1 given, 0 not here (a waiter to ring, past the bound, no slot,\n"
     "the mutex busy)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef semport_members[] = {
    {"slot", T_INT, offsetof(SemPortObject, slot), 0,
     "this process's slot index (-1: not known; the Python path sets it)"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject SemPortType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "plait._ipc._robust.SemPort",
    .tp_basicsize = sizeof(SemPortObject),
    .tp_dealloc = (destructor)semport_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A shared Semaphore's uncontended take and give (see plait/_ipc/_robust.c).",
    .tp_traverse = (traverseproc)semport_traverse,
    .tp_clear = (inquiry)semport_clear,
    .tp_methods = semport_methods,
    .tp_members = semport_members,
    .tp_new = semport_new,
};

static PlaitRobustAPI robust_api = {PLAIT_ROBUST_API_VERSION, take_word, give_word,
                                     &process_tag};

static PyObject *
robust_take(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    pthread_mutex_t *m;
    long long *holder;
    if (as_words(args, nargs, "take(mutex, holder, tag)", &m, &holder) < 0) {
        return NULL;
    }
    long long tag = PyLong_AsLongLong(args[2]);
    if (tag == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromLong(take_word(m, holder, tag));
}

static PyObject *
robust_give(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    pthread_mutex_t *m;
    long long *holder, *table;
    if (as_words(args, nargs, "give(mutex, holder, table)", &m, &holder) < 0) {
        return NULL;
    }
    table = (long long *)PyLong_AsVoidPtr(args[2]);
    if (table == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "null word address");
        }
        return NULL;
    }
    return PyLong_FromLong(give_word(m, holder, table));
}

static PyMethodDef robust_methods[] = {
    {"take", (PyCFunction)(void (*)(void))robust_take, METH_FASTCALL,
     "A free shared lock's take: 1 taken, 0 held, -errno from trylock."},
    {"give", (PyCFunction)(void (*)(void))robust_give, METH_FASTCALL,
     "A held shared lock's give with nobody waiting: 1 given, 0 slow path, -errno."},
    {"set_process_tag", robust_set_process_tag, METH_O,
     "set_process_tag(tag): this process's tag, which the C takes write (plait._sync._robust\n"
     "sets it at import and in a forked child)."},
    {"init", robust_init, METH_O, "Initialise a process-shared robust mutex at address."},
    {"trylock", robust_trylock, METH_O, "pthread_mutex_trylock: 0, EBUSY or EOWNERDEAD."},
    {"unlock", robust_unlock, METH_O, "pthread_mutex_unlock."},
    {"consistent", robust_consistent, METH_O, "pthread_mutex_consistent (after EOWNERDEAD)."},
    {"timedlock", (PyCFunction)(void (*)(void))robust_timedlock, METH_FASTCALL,
     "pthread_mutex_timedlock for up to seconds (the GIL released): 0, ETIMEDOUT, "
     "EOWNERDEAD."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef robust_module = {
    PyModuleDef_HEAD_INIT, "plait._ipc._robust",
    "Process-shared robust mutexes in shared memory (see plait/_ipc/robust.py).", -1,
    robust_methods,
};

PyMODINIT_FUNC
PyInit__robust(void)
{
    PyObject *m = PyModule_Create(&robust_module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "SIZE", (long)sizeof(pthread_mutex_t)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyType_Ready(&SemPortType) < 0 ||
        PyModule_AddObjectRef(m, "SemPort", (PyObject *)&SemPortType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    PyObject *api = PyCapsule_New(&robust_api, PLAIT_ROBUST_CAPSULE, NULL);
    if (api == NULL || PyModule_AddObject(m, "_C_API", api) < 0) {
        Py_XDECREF(api);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
