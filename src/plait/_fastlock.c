/* plait._fastlock: the uncontended paths of plait.Lock, current_strand() and async_sleep(0) in C.
 *
 * Why this exists: bench/bench_sync.py shows that a Python method call around a non-blocking
 * acquire costs two to four times threading.Lock's, and that ``await lock.async_acquire()``
 * (a Python coroutine plus the lookup of the current task) costs five times asyncio.Lock's.
 * On Python 3.11 asyncio's own running-loop lookup makes a system call (getpid) each time,
 * which alone costs more than a lock acquire on a virtual machine.
 *
 * What it holds (a complete type over its own struct, plus two small helpers):
 *   Inner      the in-process state of a plait lock (``_inner``): taken or free, a flag
 *              guarded by the GIL. plait's code only ever tries it (``acquire(False)``):
 *              waiting goes through the lock's wait queue.
 *   SharedInner  a shared lock's ``_inner``: its holder word in shared memory, taken and
 *              given under the segment's robust mutex by plait._ipc._robust's C functions
 *              (a capsule); the backend's Python methods do everything else.
 *   LockCore   the base of plait's lock classes: ``_inner``, ``_queue``, ``_owner`` and
 *              ``_owner_ident`` as C fields, and the methods acquire/release/__enter__/
 *              __exit__/__aenter__/__aexit__/async_acquire. Each finishes in C when the lock
 *              is local, free (or held, for release) and nobody waits, and otherwise calls the
 *              Python method of the same name -- the reference implementation, unchanged --
 *              with the same arguments. A shared lock's take and give finish in C the same
 *              way (uncontended: free, or held with nobody waiting in any process). Only
 *              plait.Lock uses these methods (RLock and the shared classes define their own).
 *   LockOp     what async_acquire() returns: does nothing until awaited (a task cancelled
 *              before it starts holds nothing), then takes the free lock in C or runs the
 *              Python coroutine ``_async_acquire(me, None)`` in its place.
 *   Yield      what async_sleep(0) returns: yields to the loop once, as asyncio.sleep(0).
 *   current_strand()  the running coroutine's or thread's strand when it is already known,
 *              else the Python current_strand (which adopts it).
 *
 * Owner: the fast path of a thread records only the thread's key (``_owner_ident``) and the
 * id of the context it runs in (``_owner_context``: a green strand's greenlet runs in a
 * context of its own); a coroutine's records its strand (``_owner``). plait's deadlock
 * detector resolves them to the taker's strand lazily (see ``_LockCore._holder``), so the
 * hot path pays nothing for it but two stores.
 *
 * The seam with Python, all of it checked by configure_strands()/configure_lock() (called at
 * import by plait/_core/strands.py and plait/_sync/_lock.py, letting any failure raise):
 *   - WaitQueue's ``_count`` slot and the instruments' ``hooks.active`` slot, by offset;
 *   - the Python methods of Lock, passed as ``entry`` and called as plain functions with the
 *     lock first -- never looked up by name.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <pythread.h>

#define SEAM_VERSION 4

#if PY_VERSION_HEX >= 0x030D0000
#define lookup_attr PyObject_GetOptionalAttr
#else
#define lookup_attr _PyObject_LookupAttr
#endif

/* -- module state --------------------------------------------------------------------- */

static PyObject *current_tasks = NULL;     /* asyncio.tasks._current_tasks (or None) */
static PyObject *by_task = NULL;           /* plait's task -> strand dict (or None) */
static PyObject *self_strand_types = NULL; /* task types that are their own strand */
static PyObject *get_running_loop = NULL;  /* asyncio._get_running_loop */
static PyObject *thread_local = NULL;      /* plait's threading.local (``strand``) */
static PyObject *py_current_strand = NULL; /* the Python current_strand: the fallback */

static PyTypeObject *waitqueue_type = NULL;
static Py_ssize_t wq_count = -1;
static PyObject *hooks = NULL;
static Py_ssize_t active_offset = -1;
static PyObject *READY = NULL; /* the done awaitable __aenter__/__aexit__ return */
static PyObject *fn_acquire, *fn_release, *fn_enter, *fn_aenter, *fn_aexit;
static PyObject *fn_async_acquire, *fn_async_acquire_coro;

static PyObject *str_thread_id, *str_strand, *str_tls_key, *str_close, *str_throw;
static PyObject *zero = NULL; /* the small int 0 (CPython keeps one) */

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

static int
not_configured(void)
{
    PyErr_SetString(PyExc_RuntimeError,
                    "plait._fastlock is not configured (plait._sync._lock configures it at "
                    "import)");
    return -1;
}

static inline int
hooks_active(void)
{
    if (hooks == NULL)
        return 1;
    PyObject *active = SLOT(hooks, active_offset);
    return active == NULL || !PyTuple_Check(active) || PyTuple_GET_SIZE(active) != 0;
}

/* Whether anybody may be parked on the wait queue (its ``_count`` slot is not 0). */
static inline int
has_waiters(PyObject *wq)
{
    if (wq == NULL || waitqueue_type == NULL || !Py_IS_TYPE(wq, waitqueue_type))
        return 1;
    PyObject *count = SLOT(wq, wq_count);
    if (count == zero)
        return 0;
    if (count == NULL || !PyLong_CheckExact(count))
        return 1;
    return PyObject_IsTrue(count) != 0;
}

/* -- Inner ----------------------------------------------------------------------------
 * A flag guarded by the GIL (the module is built only for CPython with a GIL): every
 * acquire of a plait lock's state is non-blocking -- waiting goes through the lock's wait
 * queue -- so no OS lock is needed, and taking and freeing it are one store each. */

typedef struct {
    PyObject_HEAD
    char locked;
} InnerObject;

static PyTypeObject InnerType;

static PyObject *
inner_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "Inner() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0);
}

static inline int
inner_try(InnerObject *m)
{
    if (m->locked)
        return 0;
    m->locked = 1;
    return 1;
}

static inline void
inner_unlock(InnerObject *m)
{
    m->locked = 0;
}

/* acquire(False) or acquire(blocking=False): the only form plait's code uses. */
static PyObject *
inner_acquire(InnerObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *blocking = nargs == 1 && kwnames == NULL ? args[0] : NULL;
    if (nargs == 0 && kwnames != NULL && PyTuple_GET_SIZE(kwnames) == 1 &&
        PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "blocking") == 0)
        blocking = args[0];
    int truth = blocking != NULL ? PyObject_IsTrue(blocking) : 1;
    if (truth < 0)
        return NULL;
    if (truth) {
        PyErr_SetString(PyExc_ValueError,
                        "a lock's state is only tried, never waited for: call acquire(False) "
                        "(plait's locks wait through their wait queue)");
        return NULL;
    }
    return PyBool_FromLong(inner_try(self));
}

static PyObject *
inner_release(InnerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->locked) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    inner_unlock(self);
    Py_RETURN_NONE;
}

static PyObject *
inner_locked(InnerObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->locked);
}

static PyObject *
inner_repr(InnerObject *self)
{
    return PyUnicode_FromFormat("<plait lock state %s at %p>",
                                self->locked ? "locked" : "unlocked", self);
}

static PyMethodDef inner_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))inner_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(False) -> bool: take the state if it is free (it is never waited for)."},
    {"release", (PyCFunction)inner_release, METH_NOARGS, "Free the state."},
    {"locked", (PyCFunction)inner_locked, METH_NOARGS, "Whether the state is taken."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject InnerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "plait._fastlock.Inner",
    .tp_basicsize = sizeof(InnerObject),
    .tp_repr = (reprfunc)inner_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The in-process state of a plait lock: taken or free, guarded by the GIL.",
    .tp_methods = inner_methods,
    .tp_new = inner_new,
};

/* -- SharedInner ----------------------------------------------------------------------
 * A shared Lock's ``_inner`` (plait/_sync/_shared.py makes one for its LockBackend): the
 * lock's holder word in its segment, taken and given under the segment's robust mutex by
 * plait._ipc._robust's C functions (through its capsule), so that an uncontended
 * ``with lock:`` or ``acquire()``/``release()`` across processes runs without a Python frame,
 * as a local lock's does. Every other outcome -- held, waiters to ring, a busy mutex or a
 * dead holder's, a release of a free lock, the process tag not set yet -- calls the
 * backend's Python method of the same name, the reference, which tries again and settles
 * it. */

#include <errno.h>
#include <pthread.h>
#include "_ipc/_robust_api.h"

#define LOAD_WORD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

typedef struct {
    PyObject_HEAD
    pthread_mutex_t *mutex;
    long long *holder; /* the lock's holder word: 0 free, else the holding process's tag */
    long long *table;  /* its wait table's first word: strands waiting, in all processes */
    PyObject *backend; /* the LockBackend: keeps the segment mapped */
    PyObject *acquire_py, *release_py; /* its Python acquire and release (bound) */
} SharedInnerObject;

static PyTypeObject SharedInnerType;
static const PlaitRobustAPI *robust_api = NULL;

static int
load_robust_api(void)
{
    if (robust_api != NULL)
        return 0;
    const PlaitRobustAPI *api = PyCapsule_Import(PLAIT_ROBUST_CAPSULE, 0);
    if (api == NULL)
        return -1;
    if (api->version != PLAIT_ROBUST_API_VERSION) {
        PyErr_Format(PyExc_ImportError,
                     "plait._ipc._robust's C API is version %d, plait._fastlock wants %d: "
                     "rebuild plait (pip install --force-reinstall --no-cache-dir plait)",
                     api->version, PLAIT_ROBUST_API_VERSION);
        return -1;
    }
    robust_api = api;
    return 0;
}

static void *
as_address(PyObject *o, const char *what)
{
    void *p = PyLong_AsVoidPtr(o);
    if (p == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "SharedInner(): null %s address", what);
    if (p != NULL && ((uintptr_t)p & 7)) {
        PyErr_Format(PyExc_ValueError, "SharedInner(): the %s address is not aligned", what);
        return NULL;
    }
    return p;
}

/* SharedInner(backend, mutex, holder, table): the addresses lie in backend's segment. */
static PyObject *
shared_inner_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *backend, *m, *h, *t;
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "SharedInner() takes positional arguments only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OOOO:SharedInner", &backend, &m, &h, &t))
        return NULL;
    if (load_robust_api() < 0)
        return NULL;
    pthread_mutex_t *mutex = as_address(m, "mutex");
    long long *holder = mutex ? as_address(h, "holder") : NULL;
    long long *table = holder ? as_address(t, "table") : NULL;
    if (table == NULL)
        return NULL;
    PyObject *acq = PyObject_GetAttrString(backend, "acquire");
    PyObject *rel = acq ? PyObject_GetAttrString(backend, "release") : NULL;
    if (rel == NULL) {
        Py_XDECREF(acq);
        return NULL;
    }
    SharedInnerObject *self = (SharedInnerObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(acq);
        Py_DECREF(rel);
        return NULL;
    }
    self->mutex = mutex;
    self->holder = holder;
    self->table = table;
    Py_INCREF(backend);
    self->backend = backend;
    self->acquire_py = acq;
    self->release_py = rel;
    return (PyObject *)self;
}

static int
shared_inner_traverse(SharedInnerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->backend);
    Py_VISIT(self->acquire_py);
    Py_VISIT(self->release_py);
    return 0;
}

static int
shared_inner_clear(SharedInnerObject *self)
{
    /* (the addresses stay valid only while the backend lives: a cleared object is not
     * used again -- the collector clears only garbage) */
    Py_CLEAR(self->acquire_py);
    Py_CLEAR(self->release_py);
    Py_CLEAR(self->backend);
    return 0;
}

static void
shared_inner_dealloc(SharedInnerObject *self)
{
    PyObject_GC_UnTrack(self);
    shared_inner_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A take or give answered -errno: if the mutex's holder had died, this thread holds it now
 * (EOWNERDEAD), and the backend must repair and free it before anything else touches it --
 * the Python path that follows would otherwise wait for it for good. 0, or -1 with an error
 * set (the repair raised). */
static int
shared_settle(SharedInnerObject *self, int rc)
{
    if (rc != -EOWNERDEAD)
        return 0; /* (busy: nothing taken) */
    PyObject *r = PyObject_CallMethod(self->backend, "settle", "i", EOWNERDEAD);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* 1 taken, 0 not here (the Python path decides), -1 an error set. */
static inline int
shared_try(SharedInnerObject *self)
{
    long long tag = *robust_api->process_tag; /* (0: not set yet) */
    if (tag == 0 || self->backend == NULL)
        return 0;
    int rc = robust_api->take(self->mutex, self->holder, tag);
    return rc >= 0 ? rc : shared_settle(self, rc);
}

/* 1 given, 0 not here (the Python path decides), -1 an error set. */
static inline int
shared_give(SharedInnerObject *self)
{
    if (self->backend == NULL)
        return 0;
    int rc = robust_api->give(self->mutex, self->holder, self->table);
    return rc >= 0 ? rc : shared_settle(self, rc);
}

static PyObject *
shared_inner_acquire(SharedInnerObject *self, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames)
{
    if (kwnames == NULL && nargs == 1 && args[0] == Py_False) {
        int got = shared_try(self);
        if (got < 0)
            return NULL;
        if (got)
            Py_RETURN_TRUE;
    }
    if (self->acquire_py == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this shared lock's state was cleared");
        return NULL;
    }
    return PyObject_Vectorcall(self->acquire_py, args, nargs, kwnames);
}

static PyObject *
shared_inner_release(SharedInnerObject *self, PyObject *Py_UNUSED(ignored))
{
    int given = shared_give(self);
    if (given < 0)
        return NULL;
    if (given)
        Py_RETURN_NONE;
    if (self->release_py == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this shared lock's state was cleared");
        return NULL;
    }
    return PyObject_CallNoArgs(self->release_py);
}

static PyObject *
shared_inner_locked(SharedInnerObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->backend != NULL && LOAD_WORD(self->holder) != 0);
}

static PyObject *
shared_inner_repr(SharedInnerObject *self)
{
    return PyUnicode_FromFormat("<plait shared lock state of %R>", self->backend);
}

static PyMethodDef shared_inner_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))shared_inner_acquire,
     METH_FASTCALL | METH_KEYWORDS,
     "acquire(False) -> bool: take the shared lock for this process if it is free."},
    {"release", (PyCFunction)shared_inner_release, METH_NOARGS,
     "Free the shared lock (the backend rings a waiter, or raises if it is free)."},
    {"locked", (PyCFunction)shared_inner_locked, METH_NOARGS,
     "Whether the shared lock is held (by any process)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef shared_inner_members[] = {
    {"backend", T_OBJECT, offsetof(SharedInnerObject, backend), READONLY,
     "the LockBackend whose holder word this is"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject SharedInnerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "plait._fastlock.SharedInner",
    .tp_basicsize = sizeof(SharedInnerObject),
    .tp_dealloc = (destructor)shared_inner_dealloc,
    .tp_repr = (reprfunc)shared_inner_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A shared plait lock's state: its holder word, taken and given in C.",
    .tp_traverse = (traverseproc)shared_inner_traverse,
    .tp_clear = (inquiry)shared_inner_clear,
    .tp_methods = shared_inner_methods,
    .tp_members = shared_inner_members,
    .tp_new = shared_inner_new,
};


/* -- the current strand ---------------------------------------------------------------- */

#if PY_VERSION_HEX < 0x030C0000
static PyObject *
weak_get(PyObject *ref)
{
    PyObject *obj = PyWeakref_GetObject(ref);
    if (obj == NULL || obj == Py_None) {
        PyErr_Clear();
        return NULL;
    }
    Py_INCREF(obj);
    return obj;
}
#endif

/* The running loop (new reference), or None. From 3.12 asyncio's own lookup is cheap; on 3.11
 * it makes a system call (getpid), so the loop last seen on this thread is kept in the thread
 * state and trusted while its _thread_id is this thread (an asyncio loop sets it while it
 * runs and clears it before it stops being the running loop). A loop without _thread_id
 * (uvloop) is looked up every time. A forked child forgets the cache (forked()). */
static PyObject *
running_loop(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyObject_CallNoArgs(get_running_loop);
#else
    unsigned long ident = PyThread_get_thread_ident();
    PyObject *tsd = PyThreadState_GetDict(); /* borrowed */
    PyObject *loop = NULL;
    if (tsd != NULL) {
        PyObject *ref = PyDict_GetItemWithError(tsd, str_tls_key); /* borrowed */
        if (ref != NULL && PyWeakref_CheckRef(ref))
            loop = weak_get(ref);
        PyErr_Clear();
    }
    if (loop != NULL) {
        PyObject *tid = NULL;
        int found = _PyObject_LookupAttr(loop, str_thread_id, &tid);
        int same = found > 0 && PyLong_CheckExact(tid) && PyLong_AsUnsignedLong(tid) == ident;
        Py_XDECREF(tid);
        PyErr_Clear();
        if (same)
            return loop;
        Py_CLEAR(loop);
    }
    loop = PyObject_CallNoArgs(get_running_loop);
    if (loop == NULL || loop == Py_None || tsd == NULL)
        return loop;
    PyObject *tid = NULL;
    if (_PyObject_LookupAttr(loop, str_thread_id, &tid) > 0) { /* worth caching */
        PyObject *ref = PyWeakref_NewRef(loop, NULL);
        if (ref == NULL || PyDict_SetItem(tsd, str_tls_key, ref) < 0)
            PyErr_Clear();
        Py_XDECREF(ref);
    }
    Py_XDECREF(tid);
    PyErr_Clear();
    return loop;
#endif
}

/* The strand of the running coroutine or thread, when it is known (new reference); NULL
 * with no error set: not known here, ask the Python current_strand (it adopts). */
static PyObject *
known_strand(void)
{
    if (current_tasks == NULL || current_tasks == Py_None || by_task == Py_None)
        return NULL;
    PyObject *loop = running_loop();
    if (loop == NULL)
        return NULL;
    if (loop != Py_None) {
        PyObject *task = PyDict_GetItemWithError(current_tasks, loop); /* borrowed */
        Py_DECREF(loop);
        if (task == NULL)
            return NULL; /* no task: a callback, or an error (left set) */
        int own = PySet_Contains(self_strand_types, (PyObject *)Py_TYPE(task));
        if (own < 0)
            return NULL;
        PyObject *strand = own ? task : PyDict_GetItemWithError(by_task, task);
        Py_XINCREF(strand);
        return strand;
    }
    Py_DECREF(loop);
    PyObject *strand = NULL;
    if (lookup_attr(thread_local, str_strand, &strand) < 0)
        return NULL;
    return strand;
}

static PyObject *
current_strand(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    PyObject *strand = known_strand();
    if (strand != NULL || PyErr_Occurred())
        return strand;
    if (py_current_strand == NULL) {
        not_configured();
        return NULL;
    }
    return PyObject_CallNoArgs(py_current_strand);
}

/* -- LockCore ------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *inner; /* _inner: an Inner while local (promotion swaps in another object) */
    PyObject *queue; /* _queue: the WaitQueue */
    PyObject *owner; /* _owner: the owner strand when known */
    unsigned long owner_ident; /* _owner_ident: the key of the thread that took it on a
                                * fast path (thread_key()), 0: none */
    unsigned long long owner_context; /* _owner_context: id() of the contextvars context
                                       * the fast path ran in (a green strand's own: the
                                       * green strand behind the loop's thread), 0: none */
} LockObject;

static int
lock_traverse(LockObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->inner);
    Py_VISIT(self->queue);
    Py_VISIT(self->owner);
    return 0;
}

static int
lock_clear(LockObject *self)
{
    Py_CLEAR(self->inner);
    Py_CLEAR(self->queue);
    Py_CLEAR(self->owner);
    return 0;
}

static void
lock_dealloc(LockObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    lock_clear(self);
    tp->tp_free((PyObject *)self); /* (a Python subclass's dealloc drops its type) */
}

/* The in-process state, if the fast paths may use it: local, configured, no instruments. */
static inline InnerObject *
fast_inner(LockObject *self)
{
    PyObject *inner = self->inner;
    if (inner == NULL || !Py_IS_TYPE(inner, &InnerType) || fn_acquire == NULL || hooks_active())
        return NULL;
    return (InnerObject *)inner;
}

/* The shared state, if the fast paths may use it: shared, configured, no instruments. */
static inline SharedInnerObject *
fast_shared(LockObject *self)
{
    PyObject *inner = self->inner;
    if (inner == NULL || !Py_IS_TYPE(inner, &SharedInnerType) || fn_acquire == NULL ||
        hooks_active())
        return NULL;
    return (SharedInnerObject *)inner;
}

/* Take the lock here, local or shared: 1 taken, 0 not here (the Python path decides), -1
 * an error set. */
static inline int
fast_take(LockObject *self)
{
    InnerObject *inner = fast_inner(self);
    if (inner != NULL)
        return inner_try(inner);
    SharedInnerObject *shared = fast_shared(self);
    return shared != NULL ? shared_try(shared) : 0;
}

/* Call a Python method (an entry) with the lock first and the caller's arguments. */
static PyObject *
call_entry(PyObject *fn, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    if (fn == NULL) {
        not_configured();
        return NULL;
    }
    Py_ssize_t total = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
    PyObject *small[8];
    PyObject **stack = small;
    if (total + 1 > 8) {
        stack = PyMem_Malloc((total + 1) * sizeof(PyObject *));
        if (stack == NULL)
            return PyErr_NoMemory();
    }
    stack[0] = self;
    for (Py_ssize_t i = 0; i < total; i++)
        stack[i + 1] = args[i];
    PyObject *r = PyObject_Vectorcall(fn, stack, nargs + 1, kwnames);
    if (stack != small)
        PyMem_Free(stack);
    return r;
}

/* The calling thread's key: its thread state's id, unique for the life of the interpreter
 * (a thread ident is reused once its thread ends, so a lock left held by a dead thread would
 * seem held by a new one). */
static inline unsigned long
thread_key_of_caller(void)
{
    return (unsigned long)PyThreadState_GetID(PyThreadState_Get());
}

static PyObject *
thread_key(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLong(thread_key_of_caller());
}

static inline int
default_acquire_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return kwnames == NULL && (nargs == 0 || (nargs == 1 && args[0] == Py_True));
}

/* acquire(False): a try, which C finishes when it takes the lock (a refusal goes to the
 * Python path: a shared lock's looks for a dead holder there). */
static inline int
try_acquire_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return kwnames == NULL && nargs == 1 && args[0] == Py_False;
}

/* Record the fast path's taker: its thread's key, and the context it runs in (greenlet
 * gives each green strand a context of its own: that tells the green strands of one loop
 * thread apart, for the deadlock detector, at the cost of one load and one store). */
static inline void
record_taker(LockObject *self)
{
    PyThreadState *tstate = PyThreadState_Get();
    self->owner_ident = (unsigned long)PyThreadState_GetID(tstate);
    self->owner_context = (unsigned long long)(uintptr_t)tstate->context;
}

static PyObject *
lock_acquire(LockObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (default_acquire_args(args, nargs, kwnames) || try_acquire_args(args, nargs, kwnames)) {
        int got = fast_take(self);
        if (got < 0)
            return NULL;
        if (got) {
            record_taker(self);
            Py_RETURN_TRUE;
        }
    }
    return call_entry(fn_acquire, (PyObject *)self, args, nargs, kwnames);
}

static PyObject *
lock_enter(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    int got = fast_take(self);
    if (got < 0)
        return NULL;
    if (got) {
        record_taker(self);
        Py_RETURN_TRUE;
    }
    return call_entry(fn_enter, (PyObject *)self, NULL, 0, NULL);
}

/* Release in C when the lock is held and nobody waits (local: on its wait queue; shared:
 * in any process): 1 done, 0 declined, -1 error. */
static inline int
fast_release(LockObject *self)
{
    InnerObject *inner = fast_inner(self);
    SharedInnerObject *shared = inner == NULL ? fast_shared(self) : NULL;
    if ((inner == NULL && shared == NULL) || has_waiters(self->queue))
        return 0;
    if (inner != NULL && !inner->locked) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return -1;
    }
    /* (shared: the owner is forgotten before the give, as the Python release does; if the
     * give declines, the Python release forgets it again and gives, or raises) */
    PyObject *owner = self->owner;
    self->owner = NULL;
    self->owner_ident = 0;
    self->owner_context = 0;
    Py_XDECREF(owner);
    if (inner != NULL) {
        inner_unlock(inner);
        return 1;
    }
    return shared_give(shared);
}

static PyObject *
lock_release(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    int r = fast_release(self);
    if (r > 0)
        Py_RETURN_NONE;
    if (r < 0)
        return NULL;
    return call_entry(fn_release, (PyObject *)self, NULL, 0, NULL);
}

static PyObject *
lock_exit(LockObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return lock_release(self, NULL);
}

static PyObject *
lock_aenter(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    InnerObject *inner = fast_inner(self);
    SharedInnerObject *shared = inner == NULL ? fast_shared(self) : NULL;
    if ((inner != NULL && !inner->locked) ||
        (shared != NULL && LOAD_WORD(shared->holder) == 0)) {
        PyObject *me = known_strand();
        if (me == NULL && PyErr_Occurred())
            return NULL;
        int got = me == NULL ? 0 : inner != NULL ? inner_try(inner) : shared_try(shared);
        if (got > 0) {
            Py_XSETREF(self->owner, me);
            Py_INCREF(READY);
            return READY;
        }
        Py_XDECREF(me);
        if (got < 0)
            return NULL;
    }
    return call_entry(fn_aenter, (PyObject *)self, NULL, 0, NULL);
}

static PyObject *
lock_aexit(LockObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int r = fast_release(self);
    if (r < 0)
        return NULL;
    if (r > 0) {
        Py_INCREF(READY);
        return READY;
    }
    return call_entry(fn_aexit, (PyObject *)self, args, nargs, NULL);
}

/* -- LockOp: the lazy awaitable of async_acquire() --------------------------------------- */

enum { OP_FRESH, OP_RUNNING, OP_DONE };

typedef struct {
    PyObject_HEAD
    PyObject *lock;
    PyObject *me;    /* the caller's strand, taken when async_acquire() was called */
    PyObject *inner; /* the Python coroutine running in our place, once started */
    char state;
} OpObject;

static PyTypeObject OpType;

static PyObject *
lock_async_acquire(LockObject *self, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames)
{
    if (!default_acquire_args(args, nargs, kwnames) || fn_acquire == NULL)
        return call_entry(fn_async_acquire, (PyObject *)self, args, nargs, kwnames);
    PyObject *me = known_strand();
    if (me == NULL) {
        if (PyErr_Occurred())
            return NULL;
        return call_entry(fn_async_acquire, (PyObject *)self, args, nargs, kwnames);
    }
    OpObject *op = PyObject_GC_New(OpObject, &OpType);
    if (op == NULL) {
        Py_DECREF(me);
        return NULL;
    }
    Py_INCREF(self);
    op->lock = (PyObject *)self;
    op->me = me;
    op->inner = NULL;
    op->state = OP_FRESH;
    PyObject_GC_Track(op);
    return (PyObject *)op;
}

static int
op_traverse(OpObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->lock);
    Py_VISIT(self->me);
    Py_VISIT(self->inner);
    return 0;
}

static int
op_clear(OpObject *self)
{
    Py_CLEAR(self->lock);
    Py_CLEAR(self->me);
    Py_CLEAR(self->inner);
    return 0;
}

static void
op_dealloc(OpObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->state == OP_FRESH && self->lock != NULL) {
        /* Like a coroutine that was never awaited: say so, as Python does. */
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                             "coroutine 'Lock.async_acquire' was never awaited") < 0)
            PyErr_WriteUnraisable((PyObject *)self);
        PyErr_Restore(et, ev, tb);
    }
    else if (self->state == OP_RUNNING && self->inner != NULL) {
        /* Dropped while suspended: close the coroutine now, as a coroutine would be. */
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        PyObject *r = PyObject_CallMethodNoArgs(self->inner, str_close);
        if (r == NULL)
            PyErr_WriteUnraisable((PyObject *)self);
        Py_XDECREF(r);
        PyErr_Restore(et, ev, tb);
    }
    op_clear(self);
    PyObject_GC_Del(self);
}

static PyObject *
op_await(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

static PySendResult
op_am_send(OpObject *self, PyObject *arg, PyObject **result)
{
    if (self->state == OP_FRESH) {
        LockObject *lock = (LockObject *)self->lock;
        self->state = OP_DONE;
        int got = fast_take(lock);
        if (got < 0) {
            *result = NULL;
            return PYGEN_ERROR;
        }
        if (got) {
            Py_INCREF(self->me);
            Py_XSETREF(lock->owner, self->me);
            Py_CLEAR(self->me);
            Py_INCREF(Py_True);
            *result = Py_True;
            return PYGEN_RETURN;
        }
        PyObject *a[3] = {self->lock, self->me, Py_None};
        PyObject *coro = PyObject_Vectorcall(fn_async_acquire_coro, a, 3, NULL);
        if (coro == NULL) {
            *result = NULL;
            return PYGEN_ERROR;
        }
        self->inner = coro;
        self->state = OP_RUNNING;
        arg = Py_None;
    }
    else if (self->state == OP_DONE || self->inner == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
        *result = NULL;
        return PYGEN_ERROR;
    }
    PySendResult r = PyIter_Send(self->inner, arg, result);
    if (r != PYGEN_NEXT) {
        self->state = OP_DONE;
        Py_CLEAR(self->inner);
    }
    return r;
}

static PyObject *
op_result(PySendResult r, PyObject *result)
{
    if (r == PYGEN_NEXT)
        return result;
    if (r == PYGEN_ERROR)
        return NULL;
    if (result == Py_None)
        PyErr_SetNone(PyExc_StopIteration);
    else if (!PyTuple_Check(result) && !PyExceptionInstance_Check(result))
        /* The value itself, not a StopIteration made here: the interpreter's await takes it
         * without building the exception (3.11), or builds it once (3.12+). */
        PyErr_SetObject(PyExc_StopIteration, result);
    else {
        PyObject *exc = PyObject_CallOneArg(PyExc_StopIteration, result);
        if (exc != NULL) {
            PyErr_SetObject(PyExc_StopIteration, exc);
            Py_DECREF(exc);
        }
    }
    Py_DECREF(result);
    return NULL;
}

static PyObject *
op_iternext(OpObject *self)
{
    PyObject *result = NULL;
    PySendResult r = op_am_send(self, Py_None, &result);
    return op_result(r, result);
}

static PyObject *
op_send(OpObject *self, PyObject *arg)
{
    PyObject *result = NULL;
    if (self->state == OP_FRESH && arg != Py_None) {
        PyErr_SetString(PyExc_TypeError,
                        "can't send non-None value to a just-started coroutine");
        return NULL;
    }
    PySendResult r = op_am_send(self, arg, &result);
    return op_result(r, result);
}

static PyObject *
raise_thrown(PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *typ = args[0];
    if (PyExceptionInstance_Check(typ))
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    else if (PyExceptionClass_Check(typ)) {
        PyObject *val = nargs > 1 ? args[1] : Py_None;
        PyErr_SetObject(typ, val);
    }
    else
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
    return NULL;
}

static PyObject *
op_throw(OpObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw() takes 1 to 3 arguments");
        return NULL;
    }
    if (self->state == OP_RUNNING && self->inner != NULL) {
        PyObject *meth = PyObject_GetAttr(self->inner, str_throw);
        if (meth == NULL)
            return NULL;
        PyObject *r = PyObject_Vectorcall(meth, args, nargs, NULL);
        Py_DECREF(meth);
        if (r == NULL) {
            self->state = OP_DONE;
            Py_CLEAR(self->inner);
        }
        return r;
    }
    /* Not started: nothing was done, nothing to undo. Finished: just raise. */
    self->state = OP_DONE;
    return raise_thrown(args, nargs);
}

static PyObject *
op_close(OpObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->state == OP_RUNNING && self->inner != NULL) {
        self->state = OP_DONE;
        PyObject *inner = self->inner;
        self->inner = NULL;
        PyObject *r = PyObject_CallMethodNoArgs(inner, str_close);
        Py_DECREF(inner);
        return r;
    }
    self->state = OP_DONE;
    Py_RETURN_NONE;
}

static PyObject *
op_get_name(OpObject *self, void *closure)
{
    return PyUnicode_FromString("async_acquire");
}

static PyObject *
op_get_qualname(OpObject *self, void *closure)
{
    return PyUnicode_FromString("Lock.async_acquire");
}

static PyObject *
op_get_inner_attr(OpObject *self, void *closure)
{
    /* The running Python coroutine's cr_frame/cr_running/cr_await, so stack dumps and
     * asyncio reprs see it; before (or without) one, a finished coroutine's answers. */
    if (self->inner != NULL)
        return PyObject_GetAttrString(self->inner, (const char *)closure);
    if (strcmp((const char *)closure, "cr_running") == 0)
        Py_RETURN_FALSE;
    Py_RETURN_NONE;
}

static PyObject *
op_repr(OpObject *self)
{
    static const char *states[] = {"not started", "running", "done"};
    return PyUnicode_FromFormat("<plait Lock.async_acquire %s>", states[(int)self->state]);
}

static PyGetSetDef op_getset[] = {
    {"__name__", (getter)op_get_name, NULL, NULL, NULL},
    {"__qualname__", (getter)op_get_qualname, NULL, NULL, NULL},
    {"cr_frame", (getter)op_get_inner_attr, NULL, NULL, "cr_frame"},
    {"cr_running", (getter)op_get_inner_attr, NULL, NULL, "cr_running"},
    {"cr_await", (getter)op_get_inner_attr, NULL, NULL, "cr_await"},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef op_methods[] = {
    {"send", (PyCFunction)op_send, METH_O, "Start or resume, as a coroutine's send()."},
    {"throw", (PyCFunction)(void (*)(void))op_throw, METH_FASTCALL,
     "Raise inside, as a coroutine's throw(); before it starts, nothing was done."},
    {"close", (PyCFunction)op_close, METH_NOARGS, "Close, as a coroutine's close()."},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods op_as_async = {
    .am_await = op_await,
    .am_send = (sendfunc)op_am_send,
};

static PyTypeObject OpType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "plait._fastlock.LockOp",
    .tp_basicsize = sizeof(OpObject),
    .tp_dealloc = (destructor)op_dealloc,
    .tp_as_async = &op_as_async,
    .tp_repr = (reprfunc)op_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "What Lock.async_acquire() returns: a coroutine that takes the lock.",
    .tp_traverse = (traverseproc)op_traverse,
    .tp_clear = (inquiry)op_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)op_iternext,
    .tp_methods = op_methods,
    .tp_getset = op_getset,
};

/* -- Yield: async_sleep(0) ------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    char state; /* 0 fresh, 1 yielded, 2 done */
} YieldObject;

static PyTypeObject YieldType;

static PyObject *
yield_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "Yield() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0);
}

static PySendResult
yield_am_send(YieldObject *self, PyObject *arg, PyObject **result)
{
    if (self->state == 0) {
        self->state = 1;
        Py_INCREF(Py_None);
        *result = Py_None; /* a bare yield: the task runs again on the next loop pass */
        return PYGEN_NEXT;
    }
    if (self->state == 1) {
        self->state = 2;
        Py_INCREF(Py_None);
        *result = Py_None;
        return PYGEN_RETURN;
    }
    PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
    *result = NULL;
    return PYGEN_ERROR;
}

static PyObject *
yield_iternext(YieldObject *self)
{
    PyObject *result = NULL;
    PySendResult r = yield_am_send(self, Py_None, &result);
    return op_result(r, result);
}

static PyObject *
yield_send(YieldObject *self, PyObject *arg)
{
    if (self->state == 0 && arg != Py_None) {
        PyErr_SetString(PyExc_TypeError,
                        "can't send non-None value to a just-started coroutine");
        return NULL;
    }
    return yield_iternext(self);
}

static PyObject *
yield_throw(YieldObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw() takes 1 to 3 arguments");
        return NULL;
    }
    self->state = 2;
    return raise_thrown(args, nargs);
}

static PyObject *
yield_close(YieldObject *self, PyObject *Py_UNUSED(ignored))
{
    self->state = 2;
    Py_RETURN_NONE;
}

static PyObject *
yield_get_none(YieldObject *self, void *closure)
{
    Py_RETURN_NONE;
}

static PyObject *
yield_get_false(YieldObject *self, void *closure)
{
    Py_RETURN_FALSE;
}

static PyObject *
yield_get_name(YieldObject *self, void *closure)
{
    return PyUnicode_FromString("async_sleep");
}

static PyGetSetDef yield_getset[] = {
    {"__name__", (getter)yield_get_name, NULL, NULL, NULL},
    {"__qualname__", (getter)yield_get_name, NULL, NULL, NULL},
    {"cr_frame", (getter)yield_get_none, NULL, NULL, NULL},
    {"cr_await", (getter)yield_get_none, NULL, NULL, NULL},
    {"cr_running", (getter)yield_get_false, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef yield_methods[] = {
    {"send", (PyCFunction)yield_send, METH_O, "Start or resume, as a coroutine's send()."},
    {"throw", (PyCFunction)(void (*)(void))yield_throw, METH_FASTCALL,
     "Raise inside, as a coroutine's throw()."},
    {"close", (PyCFunction)yield_close, METH_NOARGS, "Close, as a coroutine's close()."},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods yield_as_async = {
    .am_await = op_await,
    .am_send = (sendfunc)yield_am_send,
};

static PyTypeObject YieldType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "plait._fastlock.Yield",
    .tp_basicsize = sizeof(YieldObject),
    .tp_as_async = &yield_as_async,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "What async_sleep(0) returns: a coroutine that yields to the loop once.",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)yield_iternext,
    .tp_methods = yield_methods,
    .tp_getset = yield_getset,
    .tp_new = yield_new,
};

/* -- LockCore's type ------------------------------------------------------------------- */

/* -- RLock's fast paths: methods of LockCore that plait.RLock takes as its own ---------------
 * The owner is the calling strand, as in the Python methods (found in C: known_strand();
 * a thread plait has not met yet goes to Python once, which adopts it); the recursion count
 * is the Python slot ``_count`` (its offset given to configure_rlock()). They finish a
 * re-entry, a take of a free lock (local or shared) and a release with nobody waiting; all
 * else is RLock's Python method of the same name. The GIL is held throughout, so no other
 * thread sees the owner, the count and the state half-changed. */

static PyObject *fn_racquire = NULL, *fn_rrelease = NULL;
static Py_ssize_t count_offset = -1;

/* The recursion count (-1 with an error set, or -2 if it is not an int: Python decides). */
static inline long
count_get(LockObject *self)
{
    PyObject *c = SLOT(self, count_offset);
    if (c == NULL || !PyLong_CheckExact(c))
        return -2;
    return PyLong_AsLong(c);
}

static inline int
count_set(LockObject *self, long n)
{
    PyObject *c = PyLong_FromLong(n);
    if (c == NULL)
        return -1;
    Py_XSETREF(SLOT(self, count_offset), c);
    return 0;
}

static PyObject *
rlock_acquire(LockObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (fn_racquire == NULL) {
        not_configured();
        return NULL;
    }
    if (default_acquire_args(args, nargs, kwnames) && !hooks_active()) {
        PyObject *me = known_strand();
        if (me == NULL && PyErr_Occurred())
            return NULL;
        if (me != NULL) {
            if (self->owner == me) {
                long count = count_get(self);
                Py_DECREF(me);
                if (count == -1 && PyErr_Occurred())
                    return NULL;
                if (count >= 1) {
                    if (count_set(self, count + 1) < 0)
                        return NULL;
                    Py_RETURN_TRUE;
                }
            }
            else {
                int got = fast_take(self);
                if (got > 0) {
                    Py_XSETREF(self->owner, me);
                    if (count_set(self, 1) < 0)
                        return NULL;
                    Py_RETURN_TRUE;
                }
                Py_DECREF(me);
                if (got < 0)
                    return NULL;
            }
        }
    }
    return call_entry(fn_racquire, (PyObject *)self, args, nargs, kwnames);
}

static PyObject *
rlock_release(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    if (fn_rrelease == NULL) {
        not_configured();
        return NULL;
    }
    if (!hooks_active()) {
        PyObject *me = known_strand();
        if (me == NULL && PyErr_Occurred())
            return NULL;
        int mine = me != NULL && self->owner == me;
        Py_XDECREF(me);
        long count = mine ? count_get(self) : 0;
        if (count == -1 && PyErr_Occurred())
            return NULL;
        if (count > 1) {
            if (count_set(self, count - 1) < 0)
                return NULL;
            Py_RETURN_NONE;
        }
        if (count == 1 && !has_waiters(self->queue)) {
            InnerObject *inner = fast_inner(self);
            SharedInnerObject *shared = inner == NULL ? fast_shared(self) : NULL;
            int given = 0;
            if (inner != NULL && inner->locked) {
                inner_unlock(inner);
                given = 1;
            }
            else if (shared != NULL && (given = shared_give(shared)) < 0)
                return NULL;
            if (given) {
                PyObject *owner = self->owner;
                self->owner = NULL;
                self->owner_ident = 0;
                self->owner_context = 0;
                Py_XDECREF(owner);
                if (count_set(self, 0) < 0)
                    return NULL;
                Py_RETURN_NONE;
            }
        }
    }
    return call_entry(fn_rrelease, (PyObject *)self, NULL, 0, NULL);
}

static PyObject *
rlock_exit(LockObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return rlock_release(self, NULL);
}

static PyMethodDef lock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))lock_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1) -> bool: take the lock, as threading.Lock does."},
    {"release", (PyCFunction)lock_release, METH_NOARGS,
     "Release the lock (from any strand); RuntimeError if it is not held."},
    {"__enter__", (PyCFunction)lock_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))lock_exit, METH_FASTCALL, NULL},
    {"__aenter__", (PyCFunction)lock_aenter, METH_NOARGS, NULL},
    {"__aexit__", (PyCFunction)(void (*)(void))lock_aexit, METH_FASTCALL, NULL},
    {"async_acquire", (PyCFunction)(void (*)(void))lock_async_acquire,
     METH_FASTCALL | METH_KEYWORDS,
     "async_acquire(blocking=True, timeout=-1): coroutine form of acquire()."},
    {"_rlock_acquire", (PyCFunction)(void (*)(void))rlock_acquire,
     METH_FASTCALL | METH_KEYWORDS,
     "RLock.acquire's fast path (plait.RLock takes it as acquire and __enter__)."},
    {"_rlock_release", (PyCFunction)rlock_release, METH_NOARGS,
     "RLock.release's fast path (plait.RLock takes it as release)."},
    {"_rlock_exit", (PyCFunction)(void (*)(void))rlock_exit, METH_FASTCALL,
     "RLock.__exit__'s fast path."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef lock_members[] = {
    {"_inner", T_OBJECT_EX, offsetof(LockObject, inner), 0, "the lock's state"},
    {"_queue", T_OBJECT_EX, offsetof(LockObject, queue), 0, "the strands waiting"},
    {"_owner", T_OBJECT, offsetof(LockObject, owner), 0, "the owner strand, when known"},
    {"_owner_ident", T_ULONG, offsetof(LockObject, owner_ident), 0,
     "the thread that took the lock on a fast path (0: none)"},
    {"_owner_context", T_ULONGLONG, offsetof(LockObject, owner_context), 0,
     "id() of the context the fast path that took the lock ran in (0: none)"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject LockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "plait._fastlock.LockCore",
    .tp_basicsize = sizeof(LockObject),
    .tp_dealloc = (destructor)lock_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The state and fast paths of plait's locks (see plait/_fastlock.c).",
    .tp_traverse = (traverseproc)lock_traverse,
    .tp_clear = (inquiry)lock_clear,
    .tp_methods = lock_methods,
    .tp_members = lock_members,
    .tp_new = PyType_GenericNew,
};

/* -- module --------------------------------------------------------------------------- */

static Py_ssize_t
slot_offset(PyObject *cls, const char *name)
{
    PyObject *descr = PyObject_GetAttrString(cls, name);
    if (descr == NULL)
        return -1;
    if (!PyObject_TypeCheck(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "%s must be a __slots__ member descriptor", name);
        Py_DECREF(descr);
        return -1;
    }
    PyMemberDef *def = ((PyMemberDescrObject *)descr)->d_member;
    Py_DECREF(descr);
    if (def->type != T_OBJECT_EX && def->type != T_OBJECT) {
        PyErr_Format(PyExc_TypeError, "%s must be an object slot", name);
        return -1;
    }
    return def->offset;
}

static PyObject *
kw(PyObject *kwargs, const char *name)
{
    PyObject *v = kwargs ? PyDict_GetItemString(kwargs, name) : NULL;
    if (v == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_TypeError, "configure needs %s=", name);
    return v; /* borrowed */
}

#define KEEP(var, value) do { Py_INCREF(value); Py_XSETREF(var, value); } while (0)

static PyObject *
configure_strands(PyObject *module, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) || kwargs == NULL || PyDict_GET_SIZE(kwargs) != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "configure_strands() takes exactly the keyword arguments current_tasks, "
                        "by_task, self_strand_types, get_running_loop, local, fallback");
        return NULL;
    }
    PyObject *ct = kw(kwargs, "current_tasks"), *bt = kw(kwargs, "by_task");
    PyObject *sst = kw(kwargs, "self_strand_types"), *grl = kw(kwargs, "get_running_loop");
    PyObject *loc = kw(kwargs, "local"), *fb = kw(kwargs, "fallback");
    if (!ct || !bt || !sst || !grl || !loc || !fb)
        return NULL;
    if (!(ct == Py_None || PyDict_Check(ct)) || !(bt == Py_None || PyDict_Check(bt)) ||
        !PyAnySet_Check(sst) || !PyCallable_Check(grl) || !PyCallable_Check(fb)) {
        PyErr_SetString(PyExc_TypeError, "configure_strands(): an argument has the wrong type");
        return NULL;
    }
    KEEP(by_task, bt);
    KEEP(self_strand_types, sst);
    KEEP(get_running_loop, grl);
    KEEP(thread_local, loc);
    KEEP(py_current_strand, fb);
    KEEP(current_tasks, ct); /* last: known_strand() answers once it is set */
    Py_RETURN_NONE;
}

static const char *entry_names[] = {"acquire", "release", "__enter__", "__aenter__",
                                    "__aexit__", "async_acquire", "_async_acquire"};
#define N_ENTRIES 7

static PyObject *
configure_lock(PyObject *module, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) || kwargs == NULL || PyDict_GET_SIZE(kwargs) != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "configure_lock() takes exactly the keyword arguments WaitQueue, hooks, "
                        "READY, entry");
        return NULL;
    }
    PyObject *wq_t = kw(kwargs, "WaitQueue"), *hk = kw(kwargs, "hooks");
    PyObject *ready = kw(kwargs, "READY"), *entry = kw(kwargs, "entry");
    if (!wq_t || !hk || !ready || !entry)
        return NULL;
    if (!PyType_Check(wq_t) || !PyDict_Check(entry) || PyDict_GET_SIZE(entry) != N_ENTRIES) {
        PyErr_Format(PyExc_TypeError,
                     "configure_lock(): WaitQueue must be a class and entry a dict of the %d "
                     "Python methods of Lock",
                     N_ENTRIES);
        return NULL;
    }
    PyObject *fns[N_ENTRIES];
    for (int i = 0; i < N_ENTRIES; i++) {
        fns[i] = PyDict_GetItemString(entry, entry_names[i]); /* borrowed */
        if (fns[i] == NULL || !PyCallable_Check(fns[i])) {
            PyErr_Format(PyExc_TypeError, "configure_lock(): entry['%s'] must be a function",
                         entry_names[i]);
            return NULL;
        }
    }
    Py_ssize_t count_off = slot_offset(wq_t, "_count");
    if (count_off < 0)
        return NULL;
    Py_ssize_t active_off = slot_offset((PyObject *)Py_TYPE(hk), "active");
    if (active_off < 0)
        return NULL;
    wq_count = count_off;
    active_offset = active_off;
    KEEP(waitqueue_type, (PyTypeObject *)wq_t);
    KEEP(hooks, hk);
    KEEP(READY, ready);
    KEEP(fn_release, fns[1]);
    KEEP(fn_enter, fns[2]);
    KEEP(fn_aenter, fns[3]);
    KEEP(fn_aexit, fns[4]);
    KEEP(fn_async_acquire, fns[5]);
    KEEP(fn_async_acquire_coro, fns[6]);
    KEEP(fn_acquire, fns[0]); /* last: the fast paths run once it is set (see fast_inner) */
    Py_RETURN_NONE;
}

#undef KEEP

static PyObject *
configure_rlock(PyObject *module, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) || kwargs == NULL || PyDict_GET_SIZE(kwargs) != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "configure_rlock() takes exactly the keyword arguments owner, acquire, "
                        "release");
        return NULL;
    }
    PyObject *owner = kw(kwargs, "owner"), *acq = kw(kwargs, "acquire");
    PyObject *rel = kw(kwargs, "release");
    if (!owner || !acq || !rel)
        return NULL;
    if (fn_acquire == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_rlock(): configure_lock() comes first");
        return NULL;
    }
    if (!PyType_Check(owner) || !PyType_IsSubtype((PyTypeObject *)owner, &LockType) ||
        !PyCallable_Check(acq) || !PyCallable_Check(rel)) {
        PyErr_SetString(PyExc_TypeError,
                        "configure_rlock(): owner must be the LockCore subclass with the "
                        "_count slot, acquire and release RLock's Python methods");
        return NULL;
    }
    Py_ssize_t off = slot_offset(owner, "_count");
    if (off < 0)
        return NULL;
    count_offset = off;
    Py_INCREF(rel);
    Py_XSETREF(fn_rrelease, rel);
    Py_INCREF(acq);
    Py_XSETREF(fn_racquire, acq); /* last: the fast paths run once it is set */
    Py_RETURN_NONE;
}

static PyObject *
forked(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    /* In a forked child the loop cached on this thread is not running here any more. */
    PyObject *tsd = PyThreadState_GetDict();
    if (tsd != NULL && PyDict_DelItem(tsd, str_tls_key) < 0)
        PyErr_Clear();
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure_strands", (PyCFunction)(void (*)(void))configure_strands,
     METH_VARARGS | METH_KEYWORDS,
     "configure_strands(current_tasks, by_task, self_strand_types, get_running_loop, local,\n"
     "fallback): what current_strand() reads; fallback is the Python current_strand."},
    {"configure_lock", (PyCFunction)(void (*)(void))configure_lock,
     METH_VARARGS | METH_KEYWORDS,
     "configure_lock(WaitQueue, hooks, READY, entry): what the lock's fast paths read, and\n"
     "entry, Lock's Python methods by name (the slow paths). Raises if any is missing or\n"
     "not what the fast paths expect; until it succeeds, every call runs in Python."},
    {"configure_rlock", (PyCFunction)(void (*)(void))configure_rlock,
     METH_VARARGS | METH_KEYWORDS,
     "configure_rlock(owner, acquire, release): the class whose _count slot holds the\n"
     "recursion count, and RLock's Python acquire and release (the slow paths)."},
    {"current_strand", (PyCFunction)current_strand, METH_NOARGS,
     "The strand that is running this code (a task's strand inside a coroutine)."},
    {"thread_key", (PyCFunction)thread_key, METH_NOARGS,
     "The calling thread's key (its thread state's id: never reused), as the lock's fast\n"
     "path records it in _owner_ident."},
    {"forked", (PyCFunction)forked, METH_NOARGS,
     "Forget this thread's cached running loop (os.register_at_fork's after_in_child)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "plait._fastlock",
    .m_doc = "The lock's, current_strand()'s and async_sleep(0)'s hot paths in C.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__fastlock(void)
{
    if (PyType_Ready(&InnerType) < 0 || PyType_Ready(&SharedInnerType) < 0 ||
        PyType_Ready(&LockType) < 0 ||
        PyType_Ready(&OpType) < 0 || PyType_Ready(&YieldType) < 0)
        return NULL;
    str_thread_id = PyUnicode_InternFromString("_thread_id");
    str_strand = PyUnicode_InternFromString("strand");
    str_tls_key = PyUnicode_InternFromString("plait._fastlock.loop");
    str_close = PyUnicode_InternFromString("close");
    str_throw = PyUnicode_InternFromString("throw");
    zero = PyLong_FromLong(0);
    if (!str_thread_id || !str_strand || !str_tls_key || !str_close || !str_throw || !zero)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "SEAM", SEAM_VERSION) < 0 ||
        PyModule_AddObjectRef(m, "Inner", (PyObject *)&InnerType) < 0 ||
        PyModule_AddObjectRef(m, "SharedInner", (PyObject *)&SharedInnerType) < 0 ||
        PyModule_AddObjectRef(m, "LockCore", (PyObject *)&LockType) < 0 ||
        PyModule_AddObjectRef(m, "LockOp", (PyObject *)&OpType) < 0 ||
        PyModule_AddObjectRef(m, "Yield", (PyObject *)&YieldType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
