/* plait._speedups: the queue's hot paths in C.
 *
 * Why this exists: bench/bench_channels.py shows that a pure-Python thread-safe queue cannot
 * reach twice asyncio.Queue's coroutine stream; the coroutine frame and the lock calls alone
 * cost more than the whole budget. This module gives plait.Queue the fast paths only --
 * "there is room, nobody waits: append" and "an unclaimed item is there, nobody waits: take it"
 * -- and hands every other case to the Python methods (plait/_channels/_queue.py), which stay
 * the reference implementation and the fallback when this module cannot be built.
 *
 * Three types:
 *   Mutex      a plain non-reentrant lock (the queue's ``mutex``) whose fast paths can try
 *              it without a Python call;
 *   QueueCore  the base class of plait.Queue: the state the fast paths need, as C fields the
 *              Python code reads and writes as attributes, and put/get/async_put/async_get/
 *              __anext__ that finish in C or call the Python ``*_locked`` forms;
 *   QueueOp    what async_put/async_get/__anext__ return: a coroutine-like object that does
 *              nothing until it is awaited (so a task cancelled before it starts takes no
 *              item), then tries the fast path and, if that declines, runs the Python
 *              coroutine ``_async_*_locked`` in its place. It has send/throw/close, so
 *              asyncio takes it wherever a coroutine goes.
 *
 * A fast path holds the queue's mutex (acquired without blocking) for its whole critical
 * section, exactly like the Python code, so the two can interleave freely.
 *
 * The seam with Python, all of it checked by configure() (which plait/_channels/_queue.py
 * calls at import, letting any failure raise -- so a renamed slot or method breaks the import,
 * never silently turns this module off or strands a waiter):
 *   - the kernel's objects (Waiter, WaitQueue, the instruments' hooks) are read and written
 *     through their __slots__, whose offsets configure() takes from the classes;
 *   - a strand's ``state``/``parked_on``/``waiter``/``loop``/``kind``, which configure()
 *     checks the Strand class has;
 *   - every call into Python is one of the functions passed to configure() as ``entry``
 *     (the slow paths: _put_locked, _get_locked, _async_put_locked, _async_get_locked,
 *     _anext_locked, _handoff, _offer_slot, _woken_getter, _abandon, _undo_get), called as
 *     plain functions with the queue first -- never looked up by name;
 *   - a queue's storage: the fast paths run only while ``_fast_put``/``_fast_get`` are set,
 *     which the Python code does only for the family's own storage (a subclass overriding
 *     _init/_qsize/_put/_get runs every operation in Python, through its hooks).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <pythread.h>
#include <time.h>

/* time.monotonic_ns()'s clock (CLOCK_MONOTONIC), in ns: trace events and the shared queue's
 * spin windows. */
static long long
monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#define SEAM_VERSION 2

/* -- module state (set once by configure()) ------------------------------------------- */

/* Where the kernel's objects keep their state (configure() fills these in from the
 * classes' __slots__; until then no fast path is taken). */
static PyTypeObject *waitqueue_type = NULL;
static Py_ssize_t wq_count = -1, wq_dq = -1;
static PyTypeObject *waiter_type = NULL;
static Py_ssize_t w_queue, w_strand, w_on, w_data, w_state, w_value, w_lock, w_fut, w_loop;
static Py_ssize_t w_interruptible, w_ident, w_undo, w_handle, w_started;
static PyObject *hooks = NULL;        /* plait._core.instruments.hooks */
static Py_ssize_t active_offset = -1; /* Hooks.active slot */
static Py_ssize_t lane_offset = -1;   /* Hooks.lane slot (see report()) */
static PyObject *hook_sent = NULL, *hook_received = NULL; /* hooks.sent, hooks.received */
static PyTypeObject *strand_type = NULL; /* plait's Strand class, and its sid slot */
static Py_ssize_t strand_sid = -1;
#define SLOT_AT(obj, off) (*(PyObject **)((char *)(obj) + (off)))
static PyObject *current_tasks = NULL;     /* asyncio.tasks._current_tasks */
static PyObject *by_task = NULL;           /* plait's task -> strand dict */
static Py_ssize_t strand_loop = -1, strand_kind = -1; /* Strand's slots (configure) */
static PyObject *self_strand_types = NULL; /* task types that are their own strand */
static PyObject *get_running_loop = NULL;  /* asyncio._get_running_loop */
static PyObject *RESERVED = NULL, *QUEUED = NULL, *WOKEN = NULL, *CANCELLED = NULL;
/* The Python slow paths (configure()'s ``entry``): plain functions, the queue first. */
static PyObject *fn_put_locked, *fn_get_locked, *fn_async_put_locked;
static PyObject *fn_async_get_locked, *fn_anext_locked;
static PyObject *fn_handoff, *fn_offer_slot, *fn_woken_getter;
static PyObject *fn_abandon, *fn_undo_get;
static PyObject *str_blocking, *str_done, *str_close;
static PyObject *str_popleft, *str_append, *str_set_result, *str_create_future;
static PyObject *str_loop, *str_kind, *str_async, *str_thread_id, *str_state, *str_parked_on;
static PyObject *str_waiter, *str_running, *str_parked, *str_tls_key, *str_sid;
static PyObject *wake_fn = NULL;      /* plait._channels._queue._wake */

static int
not_configured(void)
{
    PyErr_SetString(PyExc_RuntimeError,
                    "plait._speedups is not configured (plait._channels._queue configures it "
                    "at import)");
    return -1;
}

/* Call a slow-path entry point with the queue as its only argument. */
static inline PyObject *
call_entry(PyObject *fn, PyObject *self)
{
    if (fn == NULL && not_configured() < 0)
        return NULL;
    return PyObject_Vectorcall(fn, &self, 1, NULL);
}

/* -- Mutex ---------------------------------------------------------------------------- */

/* On Linux the mutex is a POSIX semaphore of its own (1: free): its try-lock is one atomic
 * operation, where PyThread_acquire_lock_timed(lock, 0, 0) also reads the monotonic clock on
 * every call (CPython 3.11-3.12, for a deadline it does not use) -- twice per item on a
 * queue's fast paths. Elsewhere it is a PyThread lock. */
#if defined(__linux__)
#include <semaphore.h>
#include <errno.h>
#define MUTEX_SEM 1
#endif

typedef struct {
    PyObject_HEAD
#ifdef MUTEX_SEM
    sem_t sem;
#else
    PyThread_type_lock lock;
#endif
    char ready; /* the lock was made (dealloc frees it) */
    char locked;
    PyObject *weakreflist;
} MutexObject;

static PyTypeObject MutexType;

static PyObject *
mutex_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "Mutex() takes no arguments");
        return NULL;
    }
    MutexObject *self = (MutexObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
#ifdef MUTEX_SEM
    if (sem_init(&self->sem, 0, 1) != 0) {
        Py_DECREF(self);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
#else
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_MemoryError, "cannot allocate a lock");
        return NULL;
    }
#endif
    self->ready = 1;
    return (PyObject *)self;
}

static void
mutex_dealloc(MutexObject *self)
{
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    if (self->ready) {
#ifdef MUTEX_SEM
        sem_destroy(&self->sem);
#else
        if (self->locked)
            PyThread_release_lock(self->lock);
        PyThread_free_lock(self->lock);
#endif
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static inline int
mutex_try(MutexObject *m)
{
#ifdef MUTEX_SEM
    if (sem_trywait(&m->sem) == 0) {
#else
    if (PyThread_acquire_lock_timed(m->lock, 0, 0) == PY_LOCK_ACQUIRED) {
#endif
        m->locked = 1;
        return 1;
    }
    return 0;
}

static inline void
mutex_unlock(MutexObject *m)
{
    m->locked = 0;
#ifdef MUTEX_SEM
    sem_post(&m->sem);
#else
    PyThread_release_lock(m->lock);
#endif
}

#ifdef MUTEX_SEM
/* Wait for the semaphore (the GIL released by the caller): us < 0 for good, else at most us
 * microseconds (a signal's EINTR only retries). 1: taken; 0: timed out. */
static int
sem_take(sem_t *sem, long long us)
{
    if (us < 0) {
        while (sem_wait(sem) != 0)
            if (errno != EINTR)
                return 0;
        return 1;
    }
    struct timespec end;
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 30)
    clockid_t clock = CLOCK_MONOTONIC;
#else
    clockid_t clock = CLOCK_REALTIME;
#endif
    clock_gettime(clock, &end);
    end.tv_sec += (time_t)(us / 1000000);
    end.tv_nsec += (long)(us % 1000000) * 1000;
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec += 1;
        end.tv_nsec -= 1000000000L;
    }
    for (;;) {
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 30)
        int rc = sem_clockwait(sem, clock, &end);
#else
        int rc = sem_timedwait(sem, &end);
#endif
        if (rc == 0)
            return 1;
        if (errno != EINTR)
            return 0;
    }
}
#endif

/* Blocks with the GIL released. Held only for short critical sections, so the wait is not
 * interruptible by signals (as a C-level mutex, unlike threading.Lock). */
static int
mutex_lock(MutexObject *m, long long us)
{
    if (mutex_try(m))
        return 1;
    if (us == 0)
        return 0;
    int got;
    Py_BEGIN_ALLOW_THREADS
#ifdef MUTEX_SEM
    got = sem_take(&m->sem, us);
#else
    got = PyThread_acquire_lock_timed(m->lock, us, 0) == PY_LOCK_ACQUIRED;
#endif
    Py_END_ALLOW_THREADS
    if (got) {
        m->locked = 1;
        return 1;
    }
    return 0;
}

static PyObject *
mutex_acquire(MutexObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int blocking = 1;
    double timeout = -1.0;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 2 || nargs + nkw > 2) {
        PyErr_SetString(PyExc_TypeError, "acquire() takes at most 2 arguments");
        return NULL;
    }
    PyObject *blocking_obj = nargs > 0 ? args[0] : NULL;
    PyObject *timeout_obj = nargs > 1 ? args[1] : NULL;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_CompareWithASCIIString(name, "blocking") == 0 && blocking_obj == NULL)
            blocking_obj = args[nargs + i];
        else if (PyUnicode_CompareWithASCIIString(name, "timeout") == 0 && timeout_obj == NULL)
            timeout_obj = args[nargs + i];
        else {
            PyErr_Format(PyExc_TypeError, "acquire() got an unexpected keyword argument %R", name);
            return NULL;
        }
    }
    if (blocking_obj != NULL && (blocking = PyObject_IsTrue(blocking_obj)) < 0)
        return NULL;
    if (timeout_obj != NULL) {
        timeout = PyFloat_AsDouble(timeout_obj);
        if (timeout == -1.0 && PyErr_Occurred())
            return NULL;
    }
    if (!blocking && timeout != -1.0) {
        PyErr_SetString(PyExc_ValueError, "can't specify a timeout for a non-blocking call");
        return NULL;
    }
    if (timeout < 0 && timeout != -1.0) {
        PyErr_SetString(PyExc_ValueError, "timeout value must be a non-negative number");
        return NULL;
    }
    long long us;
    if (!blocking)
        us = 0;
    else if (timeout == -1.0)
        us = -1;
    else {
        double d = timeout * 1e6;
        if (d > (double)PY_TIMEOUT_MAX) {
            PyErr_SetString(PyExc_OverflowError, "timeout value is too large");
            return NULL;
        }
        us = (long long)d;
    }
    return PyBool_FromLong(mutex_lock(self, us));
}

static PyObject *
mutex_enter(MutexObject *self, PyObject *Py_UNUSED(ignored))
{
    mutex_lock(self, -1);
    Py_RETURN_TRUE;
}

static PyObject *
mutex_release(MutexObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->locked) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    mutex_unlock(self);
    Py_RETURN_NONE;
}

static PyObject *
mutex_exit(MutexObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return mutex_release(self, NULL);
}

static PyObject *
mutex_locked(MutexObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->locked);
}

static PyObject *
mutex_repr(MutexObject *self)
{
    return PyUnicode_FromFormat("<plait Mutex %s at %p>", self->locked ? "locked" : "unlocked",
                                self);
}

static PyMethodDef mutex_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))mutex_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1) -> bool: take the lock, as threading.Lock does."},
    {"release", (PyCFunction)mutex_release, METH_NOARGS, "Release the lock."},
    {"locked", (PyCFunction)mutex_locked, METH_NOARGS, "Whether the lock is held."},
    {"__enter__", (PyCFunction)mutex_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))mutex_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MutexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "plait._speedups.Mutex",
    .tp_basicsize = sizeof(MutexObject),
    .tp_dealloc = (destructor)mutex_dealloc,
    .tp_repr = (reprfunc)mutex_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A plain, non-reentrant lock with threading.Lock's API (a queue's mutex).",
    .tp_weaklistoffset = offsetof(MutexObject, weakreflist),
    .tp_methods = mutex_methods,
    .tp_new = mutex_new,
};

/* -- QueueCore ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *queue;   /* the storage (a deque, a list...) */
    PyObject *put_fn;  /* _fast_put(item): the storage's own put; unset: no fast path */
    PyObject *get_fn;  /* _fast_get() -> item: the storage's own get; unset: no fast path */
    PyObject *mutex;
    PyObject *getters; /* WaitQueue */
    PyObject *putters; /* WaitQueue */
    Py_ssize_t limit;  /* maxsize, or PY_SSIZE_T_MAX unbounded, or -1 once closed/shared */
    Py_ssize_t reserved;
    Py_ssize_t ready;
    Py_ssize_t unfinished;
    PyObject *shared;  /* the process-shared backend, once promoted (None before) */
    PyObject *undo_get; /* self._undo_get, cached by the C park */
    long long lane_number;   /* the counting lane these counts belong to (0: none; report()) */
    Py_ssize_t lane_puts;    /* fast puts/gets reported in that lane */
    Py_ssize_t lane_gets;
} CoreObject;

static int
core_traverse(CoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->queue);
    Py_VISIT(self->put_fn);
    Py_VISIT(self->get_fn);
    Py_VISIT(self->mutex);
    Py_VISIT(self->getters);
    Py_VISIT(self->putters);
    Py_VISIT(self->shared);
    Py_VISIT(self->undo_get);
    return 0;
}

static int
core_clear(CoreObject *self)
{
    Py_CLEAR(self->queue);
    Py_CLEAR(self->put_fn);
    Py_CLEAR(self->get_fn);
    Py_CLEAR(self->mutex);
    Py_CLEAR(self->getters);
    Py_CLEAR(self->putters);
    Py_CLEAR(self->shared);
    Py_CLEAR(self->undo_get);
    return 0;
}

static void
core_dealloc(CoreObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    core_clear(self);
    tp->tp_free((PyObject *)self);  /* (a Python subclass's dealloc drops its type) */
}

/* Whether anybody is parked on the wait queue (its ``_count`` slot is not 0). */
static inline int
has_waiters(PyObject *wq)
{
    if (wq == NULL || waitqueue_type == NULL || !Py_IS_TYPE(wq, waitqueue_type))
        return 1;
    PyObject *count = *(PyObject **)((char *)wq + wq_count);
    if (count == NULL || !PyLong_CheckExact(count))
        return 1;
    return PyLong_AsSsize_t(count) != 0;
}

static inline int
hooks_active(void)
{
    if (hooks == NULL)
        return 1;
    PyObject *active = *(PyObject **)((char *)hooks + active_offset);
    return active == NULL || !PyTuple_Check(active) || PyTuple_GET_SIZE(active) != 0;
}

static inline int
usable(CoreObject *self)
{
    return self->queue != NULL && self->put_fn != NULL && self->put_fn != Py_None &&
           self->get_fn != NULL && self->get_fn != Py_None &&
           self->mutex != NULL && Py_IS_TYPE(self->mutex, &MutexType) && wake_fn != NULL &&
           waiter_type != NULL && self->getters != NULL && self->putters != NULL &&
           Py_IS_TYPE(self->getters, waitqueue_type) && Py_IS_TYPE(self->putters, waitqueue_type);
}

/* A coroutine's fast put/get with instruments installed (the mutex released): tell them, as
 * the Python code's hooks.sent/received would. When one instrument is installed and offers
 * a counting lane (Hooks.lane: ``(register, lane number)``), the put/get is one increment
 * of the queue's own counters (``_lane_puts``/``_lane_gets``, which the instrument samples);
 * a queue not yet counted in this lane is first handed to ``register`` and its counters
 * start again from zero. Otherwise the hook is called with the strand (``strand`` NULL:
 * the lane went away since the caller looked; the put/get is not reported). Never raises
 * (like a hook that fails in the Python code, the failure is reported, the put/get stands). */
static inline PyObject *
counting_lane(void)
{
    PyObject *lane = hooks ? SLOT_AT(hooks, lane_offset) : NULL;
    return lane != NULL && PyTuple_CheckExact(lane) &&
                   (PyTuple_GET_SIZE(lane) == 2 || PyTuple_GET_SIZE(lane) == 6) &&
                   PyLong_CheckExact(PyTuple_GET_ITEM(lane, 1))
               ? lane
               : NULL;
}

static void
report(CoreObject *q, PyObject *strand, int put, PyObject *item)
{
    PyObject *lane = counting_lane();
    if (lane != NULL) {
        long long number = PyLong_AsLongLong(PyTuple_GET_ITEM(lane, 1));
        if (number == -1 && PyErr_Occurred()) {
            PyErr_WriteUnraisable((PyObject *)q);
            return;
        }
        if (q->lane_number != number) {
            PyObject *r = PyObject_CallOneArg(PyTuple_GET_ITEM(lane, 0), (PyObject *)q);
            if (r == NULL) {
                PyErr_WriteUnraisable((PyObject *)q);
                return;
            }
            Py_DECREF(r);
            q->lane_number = number;
            q->lane_puts = q->lane_gets = 0;
        }
        if (put)
            q->lane_puts++;
        else
            q->lane_gets++;
        return;
    }
    if (strand == NULL)
        return;
    PyObject *hook = put ? hook_sent : hook_received;
    PyObject *a[3] = {strand, (PyObject *)q, item};
    PyObject *r = hook ? PyObject_Vectorcall(hook, a, 3, NULL) : NULL;
    if (r == NULL && hook != NULL)
        PyErr_WriteUnraisable((PyObject *)q);
    Py_XDECREF(r);
}

/* -- the recorder's event lane: parks, unparks and wakes from C ----------------------------
 * A lane of six, ``(register, number, append, seq, strands, objects)`` (Instrument.lane),
 * also takes the coroutine queue's C parks, unparks and wakes: each is the one tuple the
 * recorder's Python hook would make, ``(code, t_ns, sid, id(on), b, next(seq))``, handed to
 * ``append`` -- while the strand's sid is in ``strands`` and id(on) in ``objects`` (both
 * described already); otherwise the Python hook records it (and describes them). The clock
 * is time.monotonic_ns's (CLOCK_MONOTONIC); elsewhere than Linux every event goes to Python. */
static PyObject *code_park, *code_unpark, *code_wake, *str_woken;
static PyObject *async_strand(void);

static int
lane_init(void)
{
    code_park = PyUnicode_InternFromString("pk");
    code_unpark = PyUnicode_InternFromString("up");
    code_wake = PyUnicode_InternFromString("wk");
    str_woken = PyUnicode_InternFromString("woken");
    return code_park && code_unpark && code_wake && str_woken ? 0 : -1;
}

/* The installed lane if it takes events (borrowed), else NULL. */
static inline PyObject *
event_lane(void)
{
#ifdef __linux__
    PyObject *lane = counting_lane();
    if (lane != NULL && PyTuple_GET_SIZE(lane) == 6 &&
        PyAnySet_CheckExact(PyTuple_GET_ITEM(lane, 4)) &&
        PyDict_CheckExact(PyTuple_GET_ITEM(lane, 5)))
        return lane;
#endif
    return NULL;
}

/* A strand's sid (new reference), or NULL with no error (not a plait strand). A TaskGroup's
 * coroutine strand is its own task (a registered self-strand type): its sid is read by name. */
static PyObject *
sid_of(PyObject *strand)
{
    if (strand == NULL || strand_type == NULL)
        return NULL;
    PyObject *sid = NULL;
    if (PyObject_TypeCheck(strand, strand_type))
        sid = Py_XNewRef(SLOT_AT(strand, strand_sid));
    else if (self_strand_types != NULL &&
             PySet_Contains(self_strand_types, (PyObject *)Py_TYPE(strand)) == 1)
        sid = PyObject_GetAttr(strand, str_sid);
    if (sid != NULL && PyLong_CheckExact(sid))
        return sid;
    PyErr_Clear();
    Py_XDECREF(sid);
    return NULL;
}

/* Append one event to the lane. 1: recorded; 0: not (nothing consumed: the caller tells the
 * Python hook). Never raises. */
static int
lane_record(PyObject *lane, PyObject *code, PyObject *strand, PyObject *on, PyObject *b)
{
#ifdef __linux__
    PyObject *sid = sid_of(strand);
    if (sid == NULL || PySet_Contains(PyTuple_GET_ITEM(lane, 4), sid) != 1) {
        PyErr_Clear();
        Py_XDECREF(sid);
        return 0;
    }
    PyObject *key = PyLong_FromVoidPtr(on);
    if (key == NULL || PyDict_Contains(PyTuple_GET_ITEM(lane, 5), key) != 1) {
        PyErr_Clear();
        Py_DECREF(sid);
        Py_XDECREF(key);
        return 0;
    }
    PyObject *t = PyLong_FromLongLong(monotonic_ns()), *seq = NULL, *event = NULL;
    seq = t ? PyIter_Next(PyTuple_GET_ITEM(lane, 3)) : NULL;
    if (seq == NULL) {
        PyErr_Clear();
        Py_DECREF(sid);
        Py_DECREF(key);
        Py_XDECREF(t);
        return 0;
    }
    event = PyTuple_Pack(6, code, t, sid, key, b, seq);
    Py_DECREF(sid);
    Py_DECREF(key);
    Py_DECREF(t);
    Py_DECREF(seq);
    PyObject *r = event ? PyObject_CallOneArg(PyTuple_GET_ITEM(lane, 2), event) : NULL;
    if (r == NULL) /* (its number is taken: the recorder counts it as dropped) */
        PyErr_WriteUnraisable(on);
    Py_XDECREF(r);
    Py_XDECREF(event);
    return 1;
#else
    return 0;
#endif
}

/* A park or unpark the C code did, told as mark_parked/woken_getter tell it: into the lane
 * when it takes it, else to the Python hook ``hooks.<hook>(strand, on[, b])``. */
static void
tell(PyObject *code, const char *hook, PyObject *strand, PyObject *on, PyObject *b)
{
    if (!hooks_active())
        return;
    PyObject *lane = event_lane();
    if (lane != NULL && lane_record(lane, code, strand, on, code == code_park ? Py_None : b))
        return;
    PyObject *r = code == code_park ? PyObject_CallMethod(hooks, hook, "OO", strand, on)
                                    : PyObject_CallMethod(hooks, hook, "OOO", strand, on, b);
    if (r == NULL)
        PyErr_WriteUnraisable(on);
    Py_XDECREF(r);
}

/* Record that the running coroutine wakes ``w`` (the flow arrow). 1: recorded; 0: not (the
 * Python _wake reports it). */
static int
lane_woke(PyObject *lane, PyObject *w)
{
    PyObject *woken = sid_of(SLOT_AT(w, w_strand));
    if (woken == NULL)
        return 0;
    PyObject *waker = async_strand();
    if (waker == NULL || waker == Py_None) {
        PyErr_Clear();
        Py_XDECREF(waker);
        Py_DECREF(woken);
        return 0;
    }
    int done = lane_record(lane, code_wake, waker, SLOT_AT(w, w_on), woken);
    Py_DECREF(waker);
    Py_DECREF(woken);
    return done;
}

/* -- the kernel's park protocol, for the hottest waits --------------------------------------
 * The same steps as plait/_core/parking.py and the Python queue take, on the same objects:
 * a Waiter in the WaitQueue's deque, its state and value, the strand's bookkeeping. Anything
 * unusual (a select's waiter, an instrument, another thread's loop) goes to the Python code. */

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

static inline void
slot_set(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    PyObject *old = SLOT(obj, off);
    Py_INCREF(value);
    SLOT(obj, off) = value;
    Py_XDECREF(old);
}

static inline int
is_queued(PyObject *w)
{
    PyObject *state = SLOT(w, w_state);
    return state == QUEUED || (state != NULL && PyObject_RichCompareBool(state, QUEUED, Py_EQ) == 1);
}

static int
count_add(PyObject *wq, Py_ssize_t delta)
{
    PyObject *count = SLOT(wq, wq_count);
    Py_ssize_t n = count ? PyLong_AsSsize_t(count) : 0;
    if (n == -1 && PyErr_Occurred())
        return -1;
    PyObject *v = PyLong_FromSsize_t(n + delta);
    if (v == NULL)
        return -1;
    SLOT(wq, wq_count) = v;
    Py_XDECREF(count);
    return 0;
}

/* The first queued waiter of a WaitQueue, left in place (stale ones dropped, as peek() does).
 * New reference; NULL: none (or an error, if one is set). */
static PyObject *
wq_first(PyObject *wq)
{
    PyObject *dq = SLOT(wq, wq_dq);
    if (dq == NULL)
        return NULL;
    for (;;) {
        Py_ssize_t n = PyObject_Length(dq);
        if (n <= 0)
            return NULL;
        PyObject *w = PySequence_GetItem(dq, 0);
        if (w == NULL)
            return NULL;
        if (!Py_IS_TYPE(w, waiter_type) || is_queued(w))
            return w;
        Py_DECREF(w);
        PyObject *gone = PyObject_CallMethodNoArgs(dq, str_popleft);
        if (gone == NULL)
            return NULL;
        Py_DECREF(gone);
    }
}

/* Queue._handoff (mutex held): keep the item just queued for the first parked getter.
 * New reference to the waiter to wake, or None. */
static PyObject *
handoff(CoreObject *self)
{
    PyObject *w = wq_first(self->getters);
    if (w == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    if (!Py_IS_TYPE(w, waiter_type) || SLOT(w, w_data) != Py_None) {
        Py_DECREF(w);  /* a select's waiter: the Python code knows how to offer it */
        return call_entry(fn_handoff, (PyObject *)self);
    }
    PyObject *gone = PyObject_CallMethodNoArgs(SLOT(self->getters, wq_dq), str_popleft);
    if (gone == NULL || count_add(self->getters, -1) < 0) {
        Py_XDECREF(gone);
        Py_DECREF(w);
        return NULL;
    }
    Py_DECREF(gone);
    self->ready++;
    slot_set(w, w_state, WOKEN);
    slot_set(w, w_value, RESERVED);
    return w;
}

/* Is the error set asyncio's InvalidStateError (a future that is already done)? */
static int
is_invalid_state(void)
{
    static PyObject *cls = NULL;
    if (cls == NULL) {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        PyObject *m = PyImport_ImportModule("asyncio.exceptions");
        cls = m ? PyObject_GetAttrString(m, "InvalidStateError") : NULL;
        Py_XDECREF(m);
        PyErr_Clear();
        PyErr_Restore(et, ev, tb);
        if (cls == NULL)
            return 0;
    }
    return PyErr_ExceptionMatches(cls);
}

/* _wake(w): on the waiter's own loop thread, resolve its future here; else the Python code
 * (also when an instrument listens: it reports who woke whom -- unless the lane takes it). */
static void
wake(PyObject *owner, PyObject *w)
{
    int hooked = hooks_active();
    PyObject *lane = hooked ? event_lane() : NULL;
    if (Py_IS_TYPE(w, waiter_type) && (!hooked || lane != NULL)) {
        PyObject *fut = SLOT(w, w_fut), *ident = SLOT(w, w_ident);
        if (fut != NULL && fut != Py_None && ident != NULL && PyLong_CheckExact(ident) &&
            PyLong_AsUnsignedLong(ident) == PyThread_get_thread_ident() &&
            (lane == NULL || lane_woke(lane, w))) {
            /* set_result at once (no done() first): a future already done (cancelled)
             * refuses with InvalidStateError, and there is nothing to do. */
            PyObject *r = PyObject_CallMethodOneArg(fut, str_set_result, Py_None);
            if (r != NULL) {
                Py_DECREF(r);
                return;
            }
            if (!PyErr_ExceptionMatches(PyExc_RuntimeError)) {
                if (is_invalid_state())
                    PyErr_Clear();
                else
                    PyErr_WriteUnraisable(owner);
                return;
            }
            /* Its loop is closed: the coroutine never runs again. Give back what it was
             * handed rather than lose it -- once (as _wake does). */
            PyErr_Clear();
            PyObject *undo = SLOT(w, w_undo), *state = SLOT(w, w_state);
            if (undo != NULL && undo != Py_None && state != NULL &&
                PyObject_RichCompareBool(state, WOKEN, Py_EQ) == 1) {
                slot_set(w, w_state, CANCELLED);
                Py_INCREF(undo);
                PyObject *r2 = PyObject_CallOneArg(undo, SLOT(w, w_value));
                Py_DECREF(undo);
                if (r2 == NULL)
                    PyErr_WriteUnraisable(owner);
                Py_XDECREF(r2);
            }
            PyErr_Clear();
            return;
        }
    }
    PyObject *r = PyObject_CallOneArg(wake_fn, w);
    if (r == NULL)
        PyErr_WriteUnraisable(owner);
    Py_XDECREF(r);
}

#if PY_VERSION_HEX < 0x030C0000
/* The object a weak reference points to (new reference), or NULL (dead; no error set). */
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
 * state and trusted while its _thread_id is this thread (an asyncio loop records it while it
 * runs). A loop without _thread_id (uvloop) is looked up every time. */
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

/* The strand of the running coroutine (new reference), or None if anything is unusual.
 * ``loop_out`` (if given) gets the running loop (new reference) when the strand is the task
 * itself (one of self_strand_types: its loop is this loop, its kind "async"), else NULL. */
static PyObject *
async_strand_of(PyObject **loop_out)
{
    if (loop_out)
        *loop_out = NULL;
    if (current_tasks == Py_None || by_task == Py_None) /* an asyncio without them */
        Py_RETURN_NONE;
    PyObject *loop = running_loop();
    if (loop == NULL || loop == Py_None)
        return loop;
    PyObject *task = PyDict_GetItemWithError(current_tasks, loop); /* borrowed */
    if (task == NULL) {
        Py_DECREF(loop);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    int own = PySet_Contains(self_strand_types, (PyObject *)Py_TYPE(task));
    if (own < 0) {
        Py_DECREF(loop);
        return NULL;
    }
    PyObject *strand = own ? task : PyDict_GetItemWithError(by_task, task);
    if (strand == NULL) {
        Py_DECREF(loop);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    Py_INCREF(strand);
    if (own && loop_out)
        *loop_out = loop;
    else
        Py_DECREF(loop);
    return strand;
}

static PyObject *
async_strand(void)
{
    return async_strand_of(NULL);
}

/* A strand's wait bookkeeping (state, parked_on, waiter): stored straight into the slots when
 * its type keeps them as plain object slots and has no __setattr__ of its own (what setattr
 * would do, without the lookups); else by setattr. The layout is cached for one type, checked
 * by its version tag (a changed class gets a new tag). */
static PyTypeObject *note_type = NULL;
static unsigned int note_tag = 0;
static Py_ssize_t note_off[3];

static int
note_layout(PyTypeObject *tp)
{
    if (tp->tp_setattro != PyObject_GenericSetAttr)
        return 0;
    PyObject *names[3] = {str_state, str_parked_on, str_waiter};
    Py_ssize_t off[3];
    for (int i = 0; i < 3; i++) {
        PyObject *descr = PyObject_GetAttr((PyObject *)tp, names[i]);
        if (descr == NULL) {
            PyErr_Clear();
            return 0;
        }
        int ok = PyObject_TypeCheck(descr, &PyMemberDescr_Type);
        PyMemberDef *def = ok ? ((PyMemberDescrObject *)descr)->d_member : NULL;
        ok = ok && (def->type == T_OBJECT_EX || def->type == T_OBJECT) &&
             !(def->flags & READONLY);
        if (ok)
            off[i] = def->offset;
        Py_DECREF(descr);
        if (!ok)
            return 0;
    }
    if (tp->tp_version_tag == 0)
        return 0;
    Py_INCREF(tp);
    Py_XSETREF(note_type, tp);
    note_tag = tp->tp_version_tag;
    memcpy(note_off, off, sizeof off);
    return 1;
}

static int
strand_note(PyObject *strand, PyObject *state, PyObject *on, PyObject *waiter)
{
    PyTypeObject *tp = Py_TYPE(strand);
    if ((tp == note_type && tp->tp_version_tag == note_tag && note_tag != 0) ||
        note_layout(tp)) {
        slot_set(strand, note_off[0], state);
        slot_set(strand, note_off[1], on);
        slot_set(strand, note_off[2], waiter);
        return 0;
    }
    if (PyObject_SetAttr(strand, str_state, state) < 0 ||
        PyObject_SetAttr(strand, str_parked_on, on) < 0 ||
        PyObject_SetAttr(strand, str_waiter, waiter) < 0)
        return -1;
    return 0;
}

/* This thread's ident as an int (new reference), kept for the thread that asked last. */
static unsigned long ident_of_last = 0;
static PyObject *ident_last = NULL;

static PyObject *
thread_ident(void)
{
    unsigned long ident = PyThread_get_thread_ident();
    if (ident_last == NULL || ident != ident_of_last) {
        PyObject *v = PyLong_FromUnsignedLong(ident);
        if (v == NULL)
            return NULL;
        Py_XSETREF(ident_last, v);
        ident_of_last = ident;
    }
    Py_INCREF(ident_last);
    return ident_last;
}

/* loop.create_future(): asyncio's own (BaseEventLoop's) makes ``futures.Future(loop=loop)``;
 * made here without its Python frame when the loop's class keeps that method (checked once
 * per class version, as strand_note's layout). Other loops (uvloop) are asked. */
static PyObject *base_create_future = NULL, *future_cls = NULL, *kw_loop = NULL;
static PyTypeObject *cf_type = NULL;
static unsigned int cf_tag = 0;
static PyGetSetDef *blocking_def = NULL; /* Future._asyncio_future_blocking, if a C getset */

/* fut._asyncio_future_blocking = True (what a Task needs of a yielded future): through the
 * C Future's own setter when fut is exactly asyncio's Future, else setattr. */
static int
set_blocking(PyObject *fut)
{
    if (blocking_def != NULL && future_cls != NULL && (PyObject *)Py_TYPE(fut) == future_cls)
        return blocking_def->set(fut, Py_True, blocking_def->closure);
    return PyObject_SetAttr(fut, str_blocking, Py_True);
}

static PyObject *
new_future(PyObject *loop)
{
    PyTypeObject *tp = Py_TYPE(loop);
    if (!(tp == cf_type && tp->tp_version_tag == cf_tag && cf_tag != 0)) {
        if (base_create_future == NULL) {
            PyObject *be = PyImport_ImportModule("asyncio.base_events");
            PyObject *base = be ? PyObject_GetAttrString(be, "BaseEventLoop") : NULL;
            PyObject *fn = base ? PyObject_GetAttr(base, str_create_future) : NULL;
            PyObject *fu = PyImport_ImportModule("asyncio.futures");
            PyObject *cls = fu ? PyObject_GetAttrString(fu, "Future") : NULL;
            PyObject *names = PyTuple_Pack(1, str_loop);
            Py_XDECREF(be);
            Py_XDECREF(base);
            Py_XDECREF(fu);
            if (fn == NULL || cls == NULL || names == NULL) {
                Py_XDECREF(fn);
                Py_XDECREF(cls);
                Py_XDECREF(names);
                return NULL;
            }
            PyObject *d = PyObject_GetAttr(cls, str_blocking);
            if (d != NULL && Py_IS_TYPE(d, &PyGetSetDescr_Type) &&
                ((PyGetSetDescrObject *)d)->d_getset->set != NULL)
                blocking_def = ((PyGetSetDescrObject *)d)->d_getset; /* (cls keeps it alive) */
            Py_XDECREF(d);
            PyErr_Clear();
            base_create_future = fn;
            future_cls = cls;
            kw_loop = names;
        }
        PyObject *mine = PyObject_GetAttr((PyObject *)tp, str_create_future);
        if (mine == NULL)
            return NULL;
        int same = mine == base_create_future;
        Py_DECREF(mine);
        if (!same || tp->tp_version_tag == 0)
            return PyObject_CallMethodNoArgs(loop, str_create_future);
        Py_INCREF(tp);
        Py_XSETREF(cf_type, tp);
        cf_tag = tp->tp_version_tag;
    }
    return PyObject_Vectorcall(future_cls, &loop, 0, kw_loop);
}

/* The running coroutine's strand (new reference) when the C park may take its plain wait on
 * this queue: no instrument but the event lane, the queue usable and open, the strand a
 * coroutine strand of an asyncio loop (its task the one that runs us); ``*loop_out`` then
 * gets that loop (new reference). None: declined (``*loop_out`` NULL); NULL: an error. */
static PyObject *
parkable_strand(CoreObject *self, PyObject **loop_out)
{
    *loop_out = NULL;
    if ((hooks_active() && event_lane() == NULL) || waiter_type == NULL || !usable(self) ||
        self->limit < 0)
        Py_RETURN_NONE;
    PyObject *loop = NULL, *kind = NULL;
    PyObject *strand = async_strand_of(&loop);
    if (strand == NULL || strand == Py_None) {
        Py_XDECREF(loop);
        return strand;
    }
    if (loop != NULL) { /* the task is the strand: its loop is the running one, kind async */
        *loop_out = loop;
        return strand;
    }
    if (Py_IS_TYPE(strand, strand_type) && SLOT(strand, strand_loop) != NULL &&
        SLOT(strand, strand_kind) != NULL) { /* (the slots, without the lookups) */
        loop = SLOT(strand, strand_loop);
        kind = SLOT(strand, strand_kind);
        Py_INCREF(loop);
        Py_INCREF(kind);
    }
    else {
        loop = PyObject_GetAttr(strand, str_loop);
        kind = loop ? PyObject_GetAttr(strand, str_kind) : NULL;
        if (kind == NULL) {
            Py_XDECREF(loop);
            Py_DECREF(strand);
            return NULL;
        }
    }
    int is_async = PyUnicode_Check(kind) && PyUnicode_Compare(kind, str_async) == 0;
    Py_DECREF(kind);
    if (loop == Py_None || !is_async) {
        Py_DECREF(loop);
        Py_DECREF(strand);
        Py_RETURN_NONE;
    }
    *loop_out = loop;
    return strand;
}

/* Whether a plain coroutine get on an empty queue should first let the loop run once (a bare
 * yield: its task steps again on the loop's next pass, with no future and no wake) before it
 * parks. In a ping-pong the item is usually there by then. Only while no getter is parked
 * (one that is must not be overtaken: it would be handed the next item anyway) and only
 * where the C park would take the wait. 1: yes; 0: no; -1: error. */
static int
may_pass(CoreObject *self)
{
    if (has_waiters(self->getters))
        return 0;
    PyObject *loop;
    PyObject *strand = parkable_strand(self, &loop);
    if (strand == NULL)
        return -1;
    Py_XDECREF(loop);
    int yes = strand != Py_None;
    Py_DECREF(strand);
    return yes;
}

/* Queue._park_getter in C: a plain wait of the running coroutine, parked. A new reference
 * to the waiter; None: declined, nothing changed (the Python coroutine takes over). */
static PyObject *
park_getter(CoreObject *self)
{
    PyObject *loop = NULL, *fut = NULL, *w = NULL, *ident = NULL;
    PyObject *strand = parkable_strand(self, &loop);
    if (strand == NULL || strand == Py_None)
        return strand;
    fut = new_future(loop);
    ident = fut ? thread_ident() : NULL;
    if (ident == NULL)
        goto error;
    MutexObject *m = (MutexObject *)self->mutex;
    mutex_lock(m, -1);
    Py_ssize_t n = PyObject_Length(self->queue);
    if (n < 0 || n > self->ready || self->limit < 0) {
        mutex_unlock(m);
        if (n < 0)
            goto error;
        goto decline;
    }
    w = waiter_type->tp_alloc(waiter_type, 0);
    if (w == NULL) {
        mutex_unlock(m);
        goto error;
    }
    slot_set(w, w_queue, self->getters);
    slot_set(w, w_strand, strand);
    slot_set(w, w_on, (PyObject *)self);
    slot_set(w, w_data, Py_None);
    slot_set(w, w_state, QUEUED);
    slot_set(w, w_value, Py_None);
    slot_set(w, w_lock, Py_None);
    slot_set(w, w_fut, fut);
    slot_set(w, w_loop, loop);
    slot_set(w, w_interruptible, Py_False);
    slot_set(w, w_ident, ident);
    slot_set(w, w_undo, Py_None);
    slot_set(w, w_handle, Py_None);
    slot_set(w, w_started, Py_False);
    PyObject *r = PyObject_CallMethodOneArg(SLOT(self->getters, wq_dq), str_append, w);
    if (r == NULL || count_add(self->getters, 1) < 0) {
        /* not queued (append failed) or queued but miscounted: either way never woken */
        Py_XDECREF(r);
        mutex_unlock(m);
        goto error;
    }
    Py_DECREF(r);
    mutex_unlock(m);
    if (self->undo_get == NULL) /* the bound method, made once per queue */
        self->undo_get = PyMethod_New(fn_undo_get, (PyObject *)self);
    if (self->undo_get == NULL)
        PyErr_WriteUnraisable((PyObject *)self); /* (out of memory) */
    else
        slot_set(w, w_undo, self->undo_get);
    if (strand_note(strand, str_parked, (PyObject *)self, w) < 0)
        PyErr_WriteUnraisable(strand); /* bookkeeping only: the wait itself is in place */
    tell(code_park, "parked", strand, (PyObject *)self, Py_None);
    Py_DECREF(strand);
    Py_DECREF(loop);
    Py_DECREF(fut);
    Py_DECREF(ident);
    return w;
decline:
    Py_XDECREF(strand);
    Py_XDECREF(loop);
    Py_XDECREF(fut);
    Py_XDECREF(ident);
    Py_RETURN_NONE;
error:
    Py_XDECREF(strand);
    Py_XDECREF(loop);
    Py_XDECREF(fut);
    Py_XDECREF(ident);
    Py_XDECREF(w);
    return NULL;
}

/* Queue._woken_getter's common case in C: the strand runs again and takes the item kept for
 * it. Returns the item (new reference), or NULL with no error: the Python code decides. */
static PyObject *
woken_getter(CoreObject *self, PyObject *w)
{
    if ((hooks_active() && event_lane() == NULL) || !Py_IS_TYPE(w, waiter_type) ||
        SLOT(w, w_value) != RESERVED || !usable(self))
        return NULL;
    MutexObject *m = (MutexObject *)self->mutex;
    mutex_lock(m, -1);
    Py_ssize_t n = PyObject_Length(self->queue);
    if (n <= 0 || (self->shared != NULL && self->shared != Py_None)) {
        mutex_unlock(m);
        PyErr_Clear();
        return NULL;
    }
    PyObject *item = PyObject_Vectorcall(self->get_fn, NULL, 0, NULL);
    if (item == NULL) {
        mutex_unlock(m);
        return NULL;
    }
    self->ready--;
    PyObject *putter = NULL;
    if (has_waiters(self->putters)) {
        putter = call_entry(fn_offer_slot, (PyObject *)self);
        if (putter == NULL)
            PyErr_WriteUnraisable((PyObject *)self);
    }
    mutex_unlock(m);
    PyObject *strand = SLOT(w, w_strand);
    if (strand != NULL && strand_note(strand, str_running, Py_None, Py_None) < 0)
        PyErr_WriteUnraisable(strand); /* bookkeeping only: the item is taken */
    if (strand != NULL)
        tell(code_unpark, "unparked", strand, (PyObject *)self, str_woken);
    if (putter != NULL && putter != Py_None)
        wake((PyObject *)self, putter);
    Py_XDECREF(putter);
    if (strand != NULL && hooks_active()) /* (taken only when the lane takes events) */
        report(self, strand, 0, item);
    return item;
}

/* Wake the waiter a Python call under the mutex returned (NULL: that call failed), after the
 * mutex is released; an error here is a bug in plait (the item is already where it
 * belongs), so it is reported, not raised. */
static void
wake_after(PyObject *self, PyObject *waiter)
{
    if (waiter == NULL) {
        PyErr_WriteUnraisable(self);
        return;
    }
    if (waiter != Py_None)
        wake(self, waiter);
    Py_DECREF(waiter);
}

/* Put if there is room and no instrument listens, or ``traced`` (the caller reports the put
 * to the instruments: see report()); a parked getter is handed the item, as the Python code
 * does. 1: put done; 0: not taken (nothing changed); -1: error (nothing put). */
static int
fast_put(CoreObject *self, PyObject *item, int traced)
{
    if (!usable(self))
        return 0;
    MutexObject *m = (MutexObject *)self->mutex;
    if (!mutex_try(m))
        return 0;
    Py_ssize_t n = PyObject_Length(self->queue);
    if (n < 0) {
        mutex_unlock(m);
        return -1;
    }
    if (n + self->reserved >= self->limit || (!traced && hooks_active())) {
        mutex_unlock(m);
        return 0;
    }
    PyObject *res = PyObject_Vectorcall(self->put_fn, &item, 1, NULL);
    if (res == NULL) {
        mutex_unlock(m);
        return -1;
    }
    Py_DECREF(res);
    self->unfinished++;
    if (!has_waiters(self->getters)) {
        mutex_unlock(m);
        return 1;
    }
    PyObject *waiter = handoff(self);
    mutex_unlock(m);
    if (waiter == NULL)
        PyErr_WriteUnraisable((PyObject *)self); /* the item is queued all the same */
    else {
        if (waiter != Py_None)
            wake((PyObject *)self, waiter);
        Py_DECREF(waiter);
    }
    return 1;
}

/* Take the next unclaimed item if no instrument listens, or ``traced`` (as fast_put); a
 * parked putter is given the slot.
 * An item (new reference); NULL with no error set: not taken; NULL with an error. */
static PyObject *
fast_get(CoreObject *self, int traced)
{
    if (!usable(self))
        return NULL;
    MutexObject *m = (MutexObject *)self->mutex;
    if (!mutex_try(m))
        return NULL;
    Py_ssize_t n = PyObject_Length(self->queue);
    if (n < 0) {
        mutex_unlock(m);
        return NULL;
    }
    if (n <= self->ready || (!traced && hooks_active())) {
        mutex_unlock(m);
        return NULL;
    }
    PyObject *item = PyObject_Vectorcall(self->get_fn, NULL, 0, NULL);
    if (item == NULL || !has_waiters(self->putters)) {
        mutex_unlock(m);
        return item;
    }
    PyObject *waiter = call_entry(fn_offer_slot, (PyObject *)self);
    mutex_unlock(m);
    wake_after((PyObject *)self, waiter);
    return item;
}

/* Parse (item?, block=True, timeout=None). Returns 0 on success. */
static int
parse_args(const char *fname, int with_item, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames, PyObject **item, PyObject **block, PyObject **timeout)
{
    static const char *names[] = {"item", "block", "timeout"};
    PyObject *slots[3] = {NULL, Py_True, Py_None};
    int first = with_item ? 0 : 1;
    Py_ssize_t max = 3 - first;
    if (nargs > max) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zd positional arguments (%zd given)",
                     fname, max, nargs);
        return -1;
    }
    int seen[3] = {0, 0, 0};
    for (Py_ssize_t i = 0; i < nargs; i++) {
        slots[first + i] = args[i];
        seen[first + i] = 1;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        int j;
        for (j = first; j < 3; j++)
            if (PyUnicode_CompareWithASCIIString(name, names[j]) == 0)
                break;
        if (j == 3) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fname,
                         name);
            return -1;
        }
        if (seen[j]) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname,
                         names[j]);
            return -1;
        }
        seen[j] = 1;
        slots[j] = args[nargs + k];
    }
    if (with_item && !seen[0]) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument: 'item'", fname);
        return -1;
    }
    if (item)
        *item = slots[0];
    *block = slots[1];
    *timeout = slots[2];
    return 0;
}

static PyObject *
call_locked(CoreObject *self, PyObject *fn, PyObject *item, PyObject *block, PyObject *timeout)
{
    if (fn == NULL && not_configured() < 0)
        return NULL;
    if (item != NULL) {
        PyObject *a[4] = {(PyObject *)self, item, block, timeout};
        return PyObject_Vectorcall(fn, a, 4, NULL);
    }
    PyObject *a[3] = {(PyObject *)self, block, timeout};
    return PyObject_Vectorcall(fn, a, 3, NULL);
}

/* The blocking, untimed get of a thread or a green strand (configure_wait()): parking.park
 * and Queue._got, and the WaitQueue's method that queues a green strand's waiter in C. */
static PyObject *fn_park = NULL, *fn_got = NULL, *str_enqueue_current = NULL;

/* _get_locked's plain wait on an empty queue, with no Python frame of the queue's own:
 * queue a waiter of the calling strand (WaitQueue.enqueue_current, under the mutex), park
 * it (parking.park: timeouts, cancel scopes, the deadlock check and instruments as ever),
 * then take the item kept for it (woken_getter), else let Queue._got decide. The item (new
 * reference); NULL with no error: declined, nothing changed (the Python code takes over). */
static PyObject *
wait_get(CoreObject *self)
{
    if (fn_park == NULL || hooks_active() || !usable(self) || self->limit < 0)
        return NULL;
    MutexObject *m = (MutexObject *)self->mutex;
    mutex_lock(m, -1);
    Py_ssize_t n = PyObject_Length(self->queue);
    if (n < 0 || n > self->ready || self->limit < 0) { /* (an item came: the usual way) */
        mutex_unlock(m);
        return NULL;
    }
    PyObject *w = PyObject_CallMethodOneArg(self->getters, str_enqueue_current, (PyObject *)self);
    mutex_unlock(m);
    if (w == NULL)
        return NULL;
    if (self->undo_get == NULL && (self->undo_get = PyMethod_New(fn_undo_get, (PyObject *)self)) == NULL) {
        PyErr_WriteUnraisable((PyObject *)self); /* (out of memory: parked with no undo) */
    }
    PyObject *park_args[3] = {w, Py_None, self->undo_get ? self->undo_get : Py_None};
    PyObject *woken = PyObject_Vectorcall(fn_park, park_args, 3, NULL);
    PyObject *item = NULL;
    if (woken != NULL) {
        if (woken == Py_True)
            item = woken_getter(self, w);
        if (item == NULL && !PyErr_Occurred()) {
            PyObject *got_args[3] = {(PyObject *)self, woken, w};
            item = PyObject_Vectorcall(fn_got, got_args, 3, NULL);
        }
        Py_DECREF(woken);
    }
    Py_DECREF(w);
    return item;
}

static PyObject *
core_put(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *item, *block, *timeout;
    if (nargs == 1 && kwnames == NULL) {
        item = args[0];
        block = Py_True;
        timeout = Py_None;
    }
    else if (parse_args("put", 1, args, nargs, kwnames, &item, &block, &timeout) < 0)
        return NULL;
    if (timeout == Py_None) {
        int r = fast_put(self, item, 0);
        if (r > 0)
            Py_RETURN_NONE;
        if (r < 0)
            return NULL;
    }
    return call_locked(self, fn_put_locked, item, block, timeout);
}

static PyObject *
core_put_nowait(CoreObject *self, PyObject *item)
{
    int r = fast_put(self, item, 0);
    if (r > 0)
        Py_RETURN_NONE;
    if (r < 0)
        return NULL;
    return call_locked(self, fn_put_locked, item, Py_False, Py_None);
}

static PyObject *
core_get(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *block = Py_True, *timeout = Py_None;
    if ((nargs || kwnames) &&
        parse_args("get", 0, args, nargs, kwnames, NULL, &block, &timeout) < 0)
        return NULL;
    if (timeout == Py_None) {
        PyObject *item = fast_get(self, 0);
        if (item != NULL || PyErr_Occurred())
            return item;
        if (block == Py_True && (item = wait_get(self)) != NULL)
            return item;
        if (PyErr_Occurred())
            return NULL;
    }
    return call_locked(self, fn_get_locked, NULL, block, timeout);
}

static PyObject *
core_get_nowait(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *item = fast_get(self, 0);
    if (item != NULL || PyErr_Occurred())
        return item;
    return call_locked(self, fn_get_locked, NULL, Py_False, Py_None);
}

/* -- QueueOp: the lazy awaitable of async_put/async_get/__anext__ ---------------------- */

enum { OP_PUT, OP_GET, OP_ANEXT };
enum { OP_FRESH, OP_RUNNING, OP_PARKED, OP_DONE, OP_PASSING };

typedef struct {
    PyObject_HEAD
    PyObject *queue;   /* a CoreObject */
    PyObject *item;    /* put: the item */
    PyObject *block;
    PyObject *timeout;
    PyObject *inner;   /* the Python coroutine running in our place, once started */
    PyObject *waiter;  /* a get parked by _park_getter (OP_PARKED) */
    PyObject *fut;     /* its future, which we yielded to the task */
    char kind;
    char state;
    char passed;       /* a get let the loop run once already (may_pass): it parks now */
} OpObject;

static PyTypeObject OpType;

static PyObject *
op_make(PyObject *queue, int kind, PyObject *item, PyObject *block, PyObject *timeout)
{
    OpObject *op = PyObject_GC_New(OpObject, &OpType);
    if (op == NULL)
        return NULL;
    Py_INCREF(queue);
    op->queue = queue;
    Py_XINCREF(item);
    op->item = item;
    Py_INCREF(block);
    op->block = block;
    Py_INCREF(timeout);
    op->timeout = timeout;
    op->inner = NULL;
    op->waiter = NULL;
    op->fut = NULL;
    op->kind = (char)kind;
    op->state = OP_FRESH;
    op->passed = 0;
    PyObject_GC_Track(op);
    return (PyObject *)op;
}

static int
op_traverse(OpObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->queue);
    Py_VISIT(self->item);
    Py_VISIT(self->block);
    Py_VISIT(self->timeout);
    Py_VISIT(self->inner);
    Py_VISIT(self->waiter);
    Py_VISIT(self->fut);
    return 0;
}

static int
op_clear(OpObject *self)
{
    Py_CLEAR(self->queue);
    Py_CLEAR(self->item);
    Py_CLEAR(self->block);
    Py_CLEAR(self->timeout);
    Py_CLEAR(self->inner);
    Py_CLEAR(self->waiter);
    Py_CLEAR(self->fut);
    return 0;
}

/* A parked get leaves the wait (or gives back what it was handed): Queue._abandon. */
static int
op_abandon(OpObject *self)
{
    PyObject *waiter = self->waiter;
    self->waiter = NULL;
    Py_CLEAR(self->fut);
    self->state = OP_DONE;
    if (waiter == NULL)
        return 0;
    PyObject *getters = ((CoreObject *)self->queue)->getters;
    PyObject *a[3] = {self->queue, waiter, getters ? getters : Py_None};
    PyObject *r = fn_abandon ? PyObject_Vectorcall(fn_abandon, a, 3, NULL) : NULL;
    if (fn_abandon == NULL)
        not_configured();
    Py_DECREF(waiter);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static const char *
op_name(OpObject *self)
{
    return self->kind == OP_PUT ? "async_put" : self->kind == OP_GET ? "async_get" : "__anext__";
}

static void
op_dealloc(OpObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->state == OP_FRESH && self->queue != NULL) {
        /* Like a coroutine that was never awaited: say so, as Python does. */
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "coroutine '%s.%s' was never awaited",
                             Py_TYPE(self->queue)->tp_name, op_name(self)) < 0)
            PyErr_WriteUnraisable((PyObject *)self);
        PyErr_Restore(et, ev, tb);
    }
    else if (self->state == OP_PARKED) {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        if (op_abandon(self) < 0)
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
    if (self->state == OP_PASSING) /* the loop ran once: try again, and park this time */
        self->state = OP_FRESH;
    if (self->state == OP_FRESH) {
        CoreObject *q = (CoreObject *)self->queue;
        self->state = OP_DONE;
        /* With instruments installed the fast path still runs, for a plain coroutine strand,
         * and reports itself (report()); anything unusual goes to the Python code. */
        PyObject *strand = NULL;
        int counted = self->timeout == Py_None && hooks_active() && counting_lane() != NULL;
        if (self->timeout == Py_None && hooks_active() && !counted) {
            strand = async_strand();
            if (strand == NULL) {
                *result = NULL;
                return PYGEN_ERROR;
            }
            if (strand == Py_None)
                Py_CLEAR(strand);
        }
        int traced = counted || strand != NULL;
        if (self->timeout == Py_None && (traced || !hooks_active())) {
            if (self->kind == OP_PUT) {
                int r = fast_put(q, self->item, traced);
                if (r != 0) {
                    if (r > 0 && traced)
                        report(q, strand, 1, self->item);
                    Py_XDECREF(strand);
                    if (r < 0) {
                        *result = NULL;
                        return PYGEN_ERROR;
                    }
                    Py_INCREF(Py_None);
                    *result = Py_None;
                    return PYGEN_RETURN;
                }
            }
            else {
                PyObject *item = fast_get(q, traced);
                if (item != NULL) {
                    if (traced)
                        report(q, strand, 0, item);
                    Py_XDECREF(strand);
                    *result = item;
                    return PYGEN_RETURN;
                }
                if (PyErr_Occurred()) {
                    Py_XDECREF(strand);
                    *result = NULL;
                    return PYGEN_ERROR;
                }
            }
        }
        Py_XDECREF(strand);
        if (self->kind != OP_PUT && self->timeout == Py_None && self->block == Py_True) {
            /* First let the loop run once (a bare yield: the task steps again on its next
             * pass), unless a getter is parked already; then take the item if it came. */
            int pass = self->passed ? 0 : may_pass(q);
            if (pass < 0) {
                *result = NULL;
                return PYGEN_ERROR;
            }
            if (pass) {
                self->passed = 1;
                self->state = OP_PASSING;
                Py_INCREF(Py_None);
                *result = Py_None;
                return PYGEN_NEXT;
            }
            /* The plain wait, without a Python coroutine: park, then yield the future. */
            PyObject *waiter = park_getter(q);
            if (waiter == NULL) {
                *result = NULL;
                return PYGEN_ERROR;
            }
            if (waiter != Py_None) {
                PyObject *fut = SLOT(waiter, w_fut);
                Py_XINCREF(fut);
                self->waiter = waiter;
                self->state = OP_PARKED;
                if (fut == NULL || set_blocking(fut) < 0) {
                    Py_XDECREF(fut);
                    PyObject *et, *ev, *tb;
                    PyErr_Fetch(&et, &ev, &tb);
                    if (op_abandon(self) < 0)
                        PyErr_WriteUnraisable((PyObject *)self);
                    PyErr_Restore(et, ev, tb);
                    *result = NULL;
                    return PYGEN_ERROR;
                }
                self->fut = fut;
                Py_INCREF(fut);
                *result = fut;
                return PYGEN_NEXT;
            }
            Py_DECREF(waiter);
        }
        PyObject *inner;
        if (self->kind == OP_PUT)
            inner = call_locked(q, fn_async_put_locked, self->item, self->block, self->timeout);
        else if (self->kind == OP_GET)
            inner = call_locked(q, fn_async_get_locked, NULL, self->block, self->timeout);
        else
            inner = call_entry(fn_anext_locked, (PyObject *)q);
        if (inner == NULL) {
            *result = NULL;
            return PYGEN_ERROR;
        }
        self->inner = inner;
        self->state = OP_RUNNING;
        arg = Py_None;
    }
    else if (self->state == OP_PARKED) {
        /* Resumed by the task: the future is done (woken) -- take what we were kept. */
        PyObject *done = PyObject_CallMethodNoArgs(self->fut, str_done);
        if (done == NULL || done != Py_True) {
            Py_XDECREF(done);
            PyObject *et, *ev, *tb;
            PyErr_Fetch(&et, &ev, &tb);
            if (op_abandon(self) < 0)
                PyErr_WriteUnraisable((PyObject *)self);
            PyErr_Restore(et, ev, tb);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_RuntimeError, "await wasn't used with future");
            *result = NULL;
            return PYGEN_ERROR;
        }
        Py_DECREF(done);
        PyObject *waiter = self->waiter;
        self->waiter = NULL;
        Py_CLEAR(self->fut);
        self->state = OP_DONE;
        PyObject *item = woken_getter((CoreObject *)self->queue, waiter);
        if (item != NULL || PyErr_Occurred()) {
            Py_DECREF(waiter);
            *result = item;
            return item != NULL ? PYGEN_RETURN : PYGEN_ERROR;
        }
        PyObject *a[3] = {self->queue, waiter, self->kind == OP_ANEXT ? Py_True : Py_False};
        PyObject *t = PyObject_Vectorcall(fn_woken_getter, a, 3, NULL);
        Py_DECREF(waiter);
        if (t == NULL) {
            *result = NULL;
            return PYGEN_ERROR;
        }
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 2) {
            Py_DECREF(t);
            PyErr_SetString(PyExc_SystemError, "_woken_getter must return a pair");
            *result = NULL;
            return PYGEN_ERROR;
        }
        PyObject *value = PyTuple_GET_ITEM(t, 1);
        Py_INCREF(value);
        int finished = PyTuple_GET_ITEM(t, 0) == Py_True;
        Py_DECREF(t);
        if (finished) {
            *result = value;
            return PYGEN_RETURN;
        }
        self->inner = value; /* an awaitable to finish the get with */
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
op_throw(OpObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw() takes 1 to 3 arguments");
        return NULL;
    }
    if (self->state == OP_RUNNING && self->inner != NULL) {
        PyObject *meth = PyObject_GetAttrString(self->inner, "throw");
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
    /* Parked: leave the wait (or give back what we were handed), then raise. Not started:
     * nothing was done, nothing to undo. Finished: just raise. */
    if (self->state == OP_PARKED && op_abandon(self) < 0)
        return NULL;
    self->state = OP_DONE;
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
    if (self->state == OP_PARKED && op_abandon(self) < 0)
        return NULL;
    self->state = OP_DONE;
    Py_RETURN_NONE;
}

static PyObject *
op_get_name(OpObject *self, void *closure)
{
    return PyUnicode_FromString(op_name(self));
}

static PyObject *
op_get_qualname(OpObject *self, void *closure)
{
    const char *cls = self->queue ? Py_TYPE(self->queue)->tp_name : "Queue";
    return PyUnicode_FromFormat("%s.%s", cls, op_name(self));
}

static PyObject *
op_get_frame(OpObject *self, void *closure)
{
    /* The running Python coroutine's frame, so stack dumps and asyncio reprs see it. */
    if (self->inner != NULL)
        return PyObject_GetAttrString(self->inner, "cr_frame");
    Py_RETURN_NONE;
}

static PyObject *
op_get_running(OpObject *self, void *closure)
{
    if (self->inner != NULL)
        return PyObject_GetAttrString(self->inner, "cr_running");
    Py_RETURN_FALSE;
}

static PyObject *
op_get_await(OpObject *self, void *closure)
{
    if (self->inner != NULL)
        return PyObject_GetAttrString(self->inner, "cr_await");
    Py_RETURN_NONE;
}

static PyObject *
op_repr(OpObject *self)
{
    static const char *states[] = {"not started", "running", "parked", "done", "passing"};
    const char *cls = self->queue ? Py_TYPE(self->queue)->tp_name : "Queue";
    return PyUnicode_FromFormat("<plait %s.%s %s>", cls, op_name(self), states[(int)self->state]);
}

static PyGetSetDef op_getset[] = {
    {"__name__", (getter)op_get_name, NULL, NULL, NULL},
    {"__qualname__", (getter)op_get_qualname, NULL, NULL, NULL},
    {"cr_frame", (getter)op_get_frame, NULL, NULL, NULL},
    {"cr_running", (getter)op_get_running, NULL, NULL, NULL},
    {"cr_await", (getter)op_get_await, NULL, NULL, NULL},
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
    .tp_name = "plait._speedups.QueueOp",
    .tp_basicsize = sizeof(OpObject),
    .tp_dealloc = (destructor)op_dealloc,
    .tp_as_async = &op_as_async,
    .tp_repr = (reprfunc)op_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A queue operation to await (what async_put/async_get return): a coroutine.",
    .tp_traverse = (traverseproc)op_traverse,
    .tp_clear = (inquiry)op_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)op_iternext,
    .tp_methods = op_methods,
    .tp_getset = op_getset,
};

static PyObject *
core_async_put(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *item, *block, *timeout;
    if (nargs == 1 && kwnames == NULL) {
        item = args[0];
        block = Py_True;
        timeout = Py_None;
    }
    else if (parse_args("async_put", 1, args, nargs, kwnames, &item, &block, &timeout) < 0)
        return NULL;
    return op_make((PyObject *)self, OP_PUT, item, block, timeout);
}

static PyObject *
core_async_get(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *block = Py_True, *timeout = Py_None;
    if ((nargs || kwnames) &&
        parse_args("async_get", 0, args, nargs, kwnames, NULL, &block, &timeout) < 0)
        return NULL;
    return op_make((PyObject *)self, OP_GET, NULL, block, timeout);
}

static PyObject *
core_anext(CoreObject *self)
{
    return op_make((PyObject *)self, OP_ANEXT, NULL, Py_True, Py_None);
}

static PyObject *
core_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    CoreObject *self = (CoreObject *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->limit = PY_SSIZE_T_MAX;
    return (PyObject *)self;
}

static PyMethodDef core_methods[] = {
    {"put", (PyCFunction)(void (*)(void))core_put, METH_FASTCALL | METH_KEYWORDS,
     "put(item, block=True, timeout=None): put item, waiting for room if the queue is bounded\n"
     "and full. Raises Full (a queue.Full) when it cannot within timeout (or at once with\n"
     "block=False), and ClosedError once the queue is closed."},
    {"put_nowait", (PyCFunction)core_put_nowait, METH_O,
     "put_nowait(item): put item if there is room now, else raise Full."},
    {"async_put", (PyCFunction)(void (*)(void))core_async_put, METH_FASTCALL | METH_KEYWORDS,
     "async_put(item, block=True, timeout=None): awaitable form of put()."},
    {"get", (PyCFunction)(void (*)(void))core_get, METH_FASTCALL | METH_KEYWORDS,
     "get(block=True, timeout=None): take the next item, waiting for one if needed.\n"
     "Raises Empty (a queue.Empty) when none comes within timeout (or at once with\n"
     "block=False), and ClosedError once the queue is closed and drained."},
    {"get_nowait", (PyCFunction)core_get_nowait, METH_NOARGS,
     "get_nowait(): take an item if one is queued now, else raise Empty."},
    {"async_get", (PyCFunction)(void (*)(void))core_async_get, METH_FASTCALL | METH_KEYWORDS,
     "async_get(block=True, timeout=None): awaitable form of get()."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef core_members[] = {
    {"queue", T_OBJECT_EX, offsetof(CoreObject, queue), 0, "the items (the storage)"},
    {"_fast_put", T_OBJECT, offsetof(CoreObject, put_fn), 0,
     "the storage's own put, for the fast paths (None: every put runs in Python)"},
    {"_fast_get", T_OBJECT, offsetof(CoreObject, get_fn), 0,
     "the storage's own get, for the fast paths (None: every get runs in Python)"},
    {"mutex", T_OBJECT_EX, offsetof(CoreObject, mutex), 0, "the lock that guards the state"},
    {"_getters", T_OBJECT_EX, offsetof(CoreObject, getters), 0, NULL},
    {"_putters", T_OBJECT_EX, offsetof(CoreObject, putters), 0, NULL},
    {"_limit", T_PYSSIZET, offsetof(CoreObject, limit), 0, NULL},
    {"_reserved", T_PYSSIZET, offsetof(CoreObject, reserved), 0, NULL},
    {"_ready", T_PYSSIZET, offsetof(CoreObject, ready), 0, NULL},
    {"_unfinished", T_PYSSIZET, offsetof(CoreObject, unfinished), 0, NULL},
    {"_shared", T_OBJECT, offsetof(CoreObject, shared), 0, NULL},
    {"_lane_number", T_LONGLONG, offsetof(CoreObject, lane_number), READONLY,
     "the counting lane _lane_puts/_lane_gets belong to (0: none)"},
    {"_lane_puts", T_PYSSIZET, offsetof(CoreObject, lane_puts), READONLY,
     "puts the C fast paths counted in that lane"},
    {"_lane_gets", T_PYSSIZET, offsetof(CoreObject, lane_gets), READONLY,
     "gets the C fast paths counted in that lane"},
    {NULL, 0, 0, 0, NULL},
};

static PyAsyncMethods core_as_async = {
    .am_anext = (unaryfunc)core_anext,
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "plait._speedups.QueueCore",
    .tp_basicsize = sizeof(CoreObject),
    .tp_dealloc = (destructor)core_dealloc,
    .tp_as_async = &core_as_async,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The state and fast paths of plait.Queue (see plait/_speedups.c).",
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_methods = core_methods,
    .tp_members = core_members,
    .tp_new = core_new,
};

/* -- RingPort: a shared queue's put/get in C ------------------------------------------------
 * A promoted queue (plait/_channels/_xproc.py) keeps its items in a ring of frames in shared
 * memory (plait/_ipc/transport.py: Ring), guarded by a robust process-shared pthread mutex
 * and watched by a wait table (plait/_ipc/doorbell.py). A RingPort does the common case of
 * put and get in C -- "the mutex is free, the queue is open, there is room (put) or an item
 * (get) in the ring itself, and nobody is announced as waiting on the other side" -- with the
 * same frames, the same commit order and the same counters as Ring.push/Ring.pop, so
 * processes with and without it share a queue. Everything else (a wait, a wake-up to ring,
 * the overflow chain, a spill to a segment, a dead holder's repair, an instrument, a timeout)
 * goes to the SharedQueue's Python methods, the reference.
 *
 * Crash safety: no Python code runs while the mutex is held here (so no signal-raised
 * cancellation can land inside, and none needs deferring), and each change is committed by
 * one 64-bit store, made after the frame is written (a release store): a process killed at
 * any instruction leaves what Ring.repair expects. */

#include <pthread.h>
#include <errno.h>
#include <sched.h>
#include <stdint.h>

/* transport.Ring's header words and frame kinds (checked against the Python constants by
 * _xproc.py when it makes a RingPort) */
enum { R_HEAD = 2, R_TAIL = 3, R_COUNT = 4, R_UNFINISHED = 7, R_CLOSED = 9, R_PUT_GATE = 12,
       R_OVF_FIRST = 14 };
enum { K_INLINE = 0, K_BYTES = 2, K_BYTEARRAY = 3, K_INT = 4 };
enum { W_GET = 0, W_PUT = 1 };
#define R_WRAP ((int64_t)-1)
#define R_INT_WORD ((int64_t)(8 << 8 | K_INT))
#define R_LOCK_SPIN 200 /* looks at a busy lock before the Python path (which waits) */
#define R_GET_LOCK_SPIN 2000 /* ... for a getter, whom many putters may hold off */
#define R_SPIN 2000 /* looks at a full (empty) ring before the Python path (which parks) */
/* A putter at a full ring keeps looking while the ring moves: each time room appears
 * within R_SPIN looks (another putter may take it first: with many putters the wait is
 * many gets long), the looking starts again -- up to R_MOVING_NS in all; it parks only
 * once the reader has gone quiet or the time is up (a park costs the reader a ring). */
#define R_MOVING_NS 1000000LL

/* The putters' gate (header word R_PUT_GATE, on the header's second cache line, which the
 * reader's fast path does not touch): a blocking C putter takes it before it goes for the
 * mutex, so that of many producers one at a time contends with the reader for the mutex and
 * the ring's first line -- the rest wait on the gate's own line. It is a hint, never needed
 * for correctness: its word is the time it was taken (0: free); a putter that cannot have it
 * within R_GATE_WAIT_NS goes on without it, and a gate older than R_GATE_STALE_NS (its
 * holder was killed, or stopped) is taken over. Python putters do not use it.
 *
 * Off unless PLAIT_PUT_GATE=1 (read at import): on 2 cores it neither helps nor hurts, and
 * what it is for -- 8 to 15 producer processes on as many cores -- waits for a lent 16-core
 * machine to be measured (bench/lent_machine.sh runs the fan-in with it off and on). */
static int put_gate_on = 0;
#define R_GATE_WAIT_NS 1000000LL
#define R_GATE_STALE_NS 10000000LL

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() __asm__ __volatile__("" ::: "memory")
#endif

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

#define COMMIT(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

typedef struct {
    PyObject_HEAD
    Py_buffer view;  /* the whole segment: keeps the mapping alive while we point into it */
    pthread_mutex_t *mutex;
    int64_t *hdr;
    int64_t *waits;  /* the wait table's totals per direction */
    char *data;
    int64_t cap;
    int64_t maxsize;
    unsigned long main_ident; /* the main thread (safepoint: where signals run) */
    PyObject *sp_state;       /* plait._core.safepoint._state */
    PyObject *encode, *put_encoded, *put_py, *get_py, *recover, *loads, *decode;
} RingPortObject;

static PyObject *str_depth = NULL;

static int
ringport_traverse(RingPortObject *self, visitproc visit, void *arg)
{
    /* view.obj is not visited: the collector must never tp_clear the memoryview we hold an
     * export of (it cannot, and the segment under it would be unmapped while we point in). */
    Py_VISIT(self->sp_state);
    Py_VISIT(self->encode);
    Py_VISIT(self->put_encoded);
    Py_VISIT(self->put_py);
    Py_VISIT(self->get_py);
    Py_VISIT(self->recover);
    Py_VISIT(self->loads);
    Py_VISIT(self->decode);
    return 0;
}

static int
ringport_clear(RingPortObject *self)
{
    Py_CLEAR(self->sp_state);
    Py_CLEAR(self->encode);
    Py_CLEAR(self->put_encoded);
    Py_CLEAR(self->put_py);
    Py_CLEAR(self->get_py);
    Py_CLEAR(self->recover);
    Py_CLEAR(self->loads);
    Py_CLEAR(self->decode);
    return 0;
}

static void
ringport_dealloc(RingPortObject *self)
{
    PyObject_GC_UnTrack(self);
    ringport_clear(self);
    if (self->view.obj != NULL)
        PyBuffer_Release(&self->view);
    self->mutex = NULL;
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* RingPort(buf, mutex_at, waits_at, data_at, cap, maxsize, main_ident, sp_state, encode,
 *          put_encoded, put, get, recover, loads, decode) */
static PyObject *
ringport_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *buf, *sp, *fns[7];
    Py_ssize_t mutex_at, waits_at, data_at, cap, maxsize;
    unsigned long main_ident;
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "RingPort() takes positional arguments only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OnnnnnkOOOOOOOO:RingPort", &buf, &mutex_at, &waits_at,
                          &data_at, &cap, &maxsize, &main_ident, &sp, &fns[0], &fns[1],
                          &fns[2], &fns[3], &fns[4], &fns[5], &fns[6]))
        return NULL;
    for (int i = 0; i < 7; i++)
        if (!PyCallable_Check(fns[i])) {
            PyErr_SetString(PyExc_TypeError, "RingPort(): the Python paths must be callables");
            return NULL;
        }
    if (str_depth == NULL && (str_depth = PyUnicode_InternFromString("depth")) == NULL)
        return NULL;
    RingPortObject *self = (RingPortObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    if (PyObject_GetBuffer(buf, &self->view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (mutex_at < 0 || waits_at < 0 || data_at < 0 || cap <= 0 || (cap & 7) ||
        (mutex_at & 7) || (waits_at & 7) || (data_at & 7) || data_at + cap > self->view.len ||
        mutex_at + (Py_ssize_t)sizeof(pthread_mutex_t) > data_at ||
        ((uintptr_t)self->view.buf & 7)) {
        PyErr_SetString(PyExc_ValueError, "RingPort(): the layout does not fit the segment");
        Py_DECREF(self);
        return NULL;
    }
    char *base = (char *)self->view.buf;
    self->mutex = (pthread_mutex_t *)(base + mutex_at);
    self->hdr = (int64_t *)base;
    self->waits = (int64_t *)(base + waits_at);
    self->data = base + data_at;
    self->cap = cap;
    self->maxsize = maxsize;
    self->main_ident = main_ident;
    Py_INCREF(sp);
    self->sp_state = sp;
    PyObject **slots[7] = {&self->encode, &self->put_encoded, &self->put_py, &self->get_py,
                           &self->recover, &self->loads, &self->decode};
    for (int i = 0; i < 7; i++) {
        Py_INCREF(fns[i]);
        *slots[i] = fns[i];
    }
    return (PyObject *)self;
}

/* Take the mutex without waiting: 0 taken, 1 busy (or broken: the Python path reports it),
 * -1 an error set (a dead holder's repair raised). A dead holder's mutex is repaired by the
 * Python path (SharedQueue._recover_held), inside a safe-point section opened here, before
 * any Python code runs with the mutex held. */
static int
ringport_trylock(RingPortObject *self, int looks, int64_t full_at)
{
    int rc = pthread_mutex_trylock(self->mutex);
    /* Held by another producer or the reader: it is held for a few hundred nanoseconds, so
     * look again a little (reading, not writing, the lock word: no cache-line ping-pong)
     * before the Python path's slower wait. A putter (``full_at``: its maxsize) stops
     * looking once the ring is full again: another putter took the room, and the lock is
     * better left to the reader, who makes the next. */
    for (int i = 0; rc == EBUSY && i < looks; i++) {
        CPU_RELAX();
        if (full_at > 0 && LOAD(&self->hdr[R_COUNT]) >= full_at)
            return 2;
        if (LOAD((int *)self->mutex) == 0)
            rc = pthread_mutex_trylock(self->mutex);
    }
    if (rc == 0)
        return 0;
    if (rc != EOWNERDEAD)
        return 1;
    if (PyThread_get_thread_ident() == self->main_ident) { /* safepoint.enter(), in C */
        PyObject *depth = PyObject_GetAttr(self->sp_state, str_depth);
        PyObject *one = PyLong_FromLong(1);
        PyObject *more = depth && one ? PyNumber_Add(depth, one) : NULL;
        Py_XDECREF(one);
        Py_XDECREF(depth);
        if (more == NULL || PyObject_SetAttr(self->sp_state, str_depth, more) < 0) {
            Py_XDECREF(more);
            pthread_mutex_unlock(self->mutex); /* not consistent: broken for everyone */
            return -1;
        }
        Py_DECREF(more);
    }
    PyObject *r = PyObject_CallNoArgs(self->recover); /* repairs, unlocks, leaves */
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 1;
}

/* Take the putters' gate, waiting a little: its token (the time it was taken), or 0 when the
 * putter goes on without it. */
static int64_t
gate_enter(int64_t *gate)
{
    long long start = 0;
    for (int i = 0;; i++) {
        int64_t g = LOAD(gate);
        if (g == 0 || (i & 63) == 0) {
            long long now = monotonic_ns();
            if (!start)
                start = now;
            if (g == 0 || now - g > R_GATE_STALE_NS) {
                int64_t mine = (int64_t)now;
                if (__atomic_compare_exchange_n(gate, &g, mine, 0, __ATOMIC_ACQUIRE,
                                                __ATOMIC_RELAXED))
                    return mine;
            }
            else if (now - start > R_GATE_WAIT_NS)
                return 0;
        }
        if (i < 256)
            CPU_RELAX();
        else
            sched_yield(); /* the holder may be waiting for a CPU: more putters than cores */
    }
}

/* Give the gate back (if it is still ours: a stale one may have been taken over). */
static inline void
gate_leave(int64_t *gate, int64_t mine)
{
    if (mine)
        __atomic_compare_exchange_n(gate, &mine, 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

/* Append one frame (mutex held): 1 pushed, 0 no room in the ring itself (Ring.push, the
 * common cases: before the end, or after a wrap marker). */
static int
ring_push(RingPortObject *self, int kind, int64_t value, const char *payload, int64_t n)
{
    int64_t *hdr = self->hdr, cap = self->cap;
    if (hdr[R_OVF_FIRST])
        return 0;
    int64_t need = 8 + ((n + 7) & -8);
    int64_t tail = hdr[R_TAIL], head = hdr[R_HEAD];
    int64_t pos = tail % cap;
    int64_t *words = (int64_t *)self->data;
    if (need > cap - pos) {
        int64_t to_end = cap - pos;
        if (tail - head + to_end + need > cap)
            return 0;
        words[pos >> 3] = R_WRAP;
        tail += to_end;
        pos = 0;
    }
    else if (tail - head + need > cap)
        return 0;
    if (kind == K_INT) {
        words[pos >> 3] = R_INT_WORD;
        words[(pos >> 3) + 1] = value;
    }
    else {
        words[pos >> 3] = n << 8 | kind;
        memcpy(self->data + pos + 8, payload, (size_t)n);
    }
    COMMIT(&hdr[R_TAIL], tail + need); /* the commit: after the frame */
    hdr[R_COUNT] += 1;
    return 1;
}

static PyObject *
ringport_put(RingPortObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *item, *block_o, *timeout;
    int64_t gate = 0; /* the putters' gate, while this call holds it */
    if (parse_args("put", 1, args, nargs, kwnames, &item, &block_o, &timeout) < 0)
        return NULL;
    if (timeout != Py_None || hooks_active()) {
        PyObject *call[3] = {item, block_o, timeout};
        return PyObject_Vectorcall(self->put_py, call, 3, NULL);
    }
    int block = PyObject_IsTrue(block_o);
    if (block < 0)
        return NULL;
    int kind = K_INT;
    long long value = 0;
    PyObject *payload = NULL, *encoded = NULL;
    Py_buffer pb = {0};
    if (PyLong_CheckExact(item)) {
        int overflow;
        value = PyLong_AsLongLongAndOverflow(item, &overflow);
        if (value == -1 && PyErr_Occurred())
            return NULL;
        if (overflow)
            kind = -1;
    }
    else
        kind = -1;
    if (kind < 0) { /* pickled (or raw bytes) by the Python encoder */
        encoded = PyObject_CallOneArg(self->encode, item);
        if (encoded == NULL)
            return NULL;
        if (!PyTuple_CheckExact(encoded) || PyTuple_GET_SIZE(encoded) != 3) {
            Py_DECREF(encoded);
            PyErr_SetString(PyExc_TypeError, "RingPort: _encode() must return a 3-tuple");
            return NULL;
        }
        PyObject *k = PyTuple_GET_ITEM(encoded, 0);
        payload = PyTuple_GET_ITEM(encoded, 1);
        kind = (int)PyLong_AsLong(k);
        if (kind == -1 && PyErr_Occurred()) {
            Py_DECREF(encoded);
            return NULL;
        }
        if (PyTuple_GET_ITEM(encoded, 2) != Py_None ||
            (kind != K_INLINE && kind != K_BYTES && kind != K_BYTEARRAY))
            goto python; /* a segment, or a frame kind only the Python path writes */
        if (PyObject_GetBuffer(payload, &pb, PyBUF_SIMPLE) < 0) {
            Py_DECREF(encoded);
            return NULL;
        }
    }
    int64_t *hdr = self->hdr;
    int64_t full_at = block ? self->maxsize : 0;
    long long moving_until = 0;
    if (block && put_gate_on)
        gate = gate_enter(&hdr[R_PUT_GATE]);
    for (;;) {
        if (LOAD(&self->waits[W_GET]) || LOAD(&hdr[R_CLOSED]))
            break; /* a getter to ring, or closed: the Python path does it */
        /* Full: look without the lock (below); else take it, unless the ring fills again
         * while the lock is busy (2). */
        int rc = full_at > 0 && LOAD(&hdr[R_COUNT]) >= full_at
                     ? 2
                     : ringport_trylock(self, R_LOCK_SPIN, full_at);
        if (rc < 0)
            goto error;
        if (rc == 1 && !block)
            break;
        if (rc == 0) {
            if (hdr[R_CLOSED] || self->waits[W_GET]) {
                pthread_mutex_unlock(self->mutex);
                break;
            }
            if (self->maxsize <= 0 || hdr[R_COUNT] < self->maxsize) {
                int pushed = kind == K_INT ? ring_push(self, K_INT, value, NULL, 8)
                                           : ring_push(self, kind, 0, pb.buf, pb.len);
                if (pushed)
                    hdr[R_UNFINISHED] += 1;
                pthread_mutex_unlock(self->mutex);
                if (!pushed)
                    break;
                gate_leave(&hdr[R_PUT_GATE], gate);
                if (encoded != NULL) {
                    PyBuffer_Release(&pb);
                    Py_DECREF(encoded);
                }
                Py_RETURN_NONE;
            }
            pthread_mutex_unlock(self->mutex);
        }
        /* Full (or the lock busy with many putters): a reader usually makes room within
         * microseconds; look before the Python path parks (no system call per item through
         * a full queue, and no putter parked: that would send the reader's every get to
         * the Python path, to ring it). */
        if (!block)
            break;
        long long now = monotonic_ns();
        if (!moving_until)
            moving_until = now + R_MOVING_NS;
        else if (now >= moving_until)
            break;
        if (rc == 1)
            continue; /* busy: try again */
        int spins = R_SPIN;
        while (spins && LOAD(&hdr[R_COUNT]) >= self->maxsize && !LOAD(&hdr[R_CLOSED])) {
            spins--;
            CPU_RELAX();
        }
        if (!spins)
            break; /* the reader went quiet: park */
    }
python:;
    gate_leave(&self->hdr[R_PUT_GATE], gate); /* (the Python path may park: never with it) */
    PyObject *r;
    if (encoded == NULL) {
        PyObject *call[6] = {item, NULL, item, Py_None, block_o, Py_None};
        call[1] = PyLong_FromLong(K_INT);
        if (call[1] == NULL)
            return NULL;
        r = PyObject_Vectorcall(self->put_encoded, call, 6, NULL);
        Py_DECREF(call[1]);
        return r;
    }
    if (pb.obj != NULL)
        PyBuffer_Release(&pb);
    {
        PyObject *call[6] = {item, PyTuple_GET_ITEM(encoded, 0), payload,
                             PyTuple_GET_ITEM(encoded, 2), block_o, Py_None};
        r = PyObject_Vectorcall(self->put_encoded, call, 6, NULL);
    }
    Py_DECREF(encoded);
    return r;
error:
    gate_leave(&self->hdr[R_PUT_GATE], gate);
    if (pb.obj != NULL)
        PyBuffer_Release(&pb);
    Py_XDECREF(encoded);
    return NULL;
}

/* Take the oldest frame of the ring itself (mutex held, COUNT > 0): 1 taken (``*value`` or
 * a new ``*bytes``), 0 not here (the overflow chain), -1 no memory (nothing taken). */
static int
ring_pop(RingPortObject *self, int *kind, int64_t *value, PyObject **bytes)
{
    int64_t *hdr = self->hdr, cap = self->cap;
    int64_t head = hdr[R_HEAD], tail = hdr[R_TAIL];
    if (head == tail)
        return 0;
    int64_t *words = (int64_t *)self->data;
    int64_t pos = head % cap;
    int64_t w = words[pos >> 3];
    if (w == R_WRAP) {
        head += cap - pos;
        pos = 0;
        w = words[0];
    }
    if (w == R_INT_WORD) {
        *kind = K_INT;
        *value = words[(pos >> 3) + 1];
        head += 16;
    }
    else {
        int64_t n = w >> 8;
        if (n < 0 || n > cap - pos - 8)
            return 0; /* not a frame we can read: the Python path reports it */
        *kind = (int)(w & 255);
        *bytes = PyBytes_FromStringAndSize(self->data + pos + 8, (Py_ssize_t)n);
        if (*bytes == NULL)
            return -1;
        head += 8 + ((n + 7) & -8);
    }
    if (head == tail) { /* emptied: start again at 0 (TAIL first: see transport.py) */
        COMMIT(&hdr[R_TAIL], 0);
        COMMIT(&hdr[R_HEAD], 0);
    }
    else
        COMMIT(&hdr[R_HEAD], head); /* the commit */
    hdr[R_COUNT] -= 1;
    return 1;
}

static PyObject *
ringport_get(RingPortObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *vals[2];
    if (parse_args("get", 0, args, nargs, kwnames, NULL, &vals[0], &vals[1]) < 0)
        return NULL;
    if (vals[1] != Py_None || hooks_active())
        return PyObject_Vectorcall(self->get_py, vals, 2, NULL);
    int block = PyObject_IsTrue(vals[0]);
    if (block < 0)
        return NULL;
    int spins = block ? R_SPIN : 0;
    long long busy_until = 0;
    for (;;) {
        if (LOAD(&self->waits[W_PUT]))
            break; /* a putter to ring: the Python path does it */
        int rc = ringport_trylock(self, R_GET_LOCK_SPIN, 0);
        if (rc < 0)
            return NULL;
        if (rc && block) {
            /* Busy: many putters may be taking turns; keep trying here a while (the
             * Python path's wait for the lock sleeps, and the putters would wait on us). */
            long long now = monotonic_ns();
            if (!busy_until)
                busy_until = now + R_MOVING_NS;
            else if (now >= busy_until)
                break;
            continue;
        }
        if (rc)
            break;
        int64_t *hdr = self->hdr;
        if (hdr[R_COUNT] && !self->waits[W_PUT]) {
            int kind = 0;
            int64_t value = 0;
            PyObject *bytes = NULL;
            rc = ring_pop(self, &kind, &value, &bytes);
            pthread_mutex_unlock(self->mutex);
            if (rc < 0)
                return NULL;
            if (rc == 0)
                break;
            if (kind == K_INT)
                return PyLong_FromLongLong(value);
            PyObject *r;
            if (kind == K_INLINE)
                r = PyObject_CallOneArg(self->loads, bytes);
            else {
                PyObject *call[2] = {PyLong_FromLong(kind), bytes};
                r = call[0] ? PyObject_Vectorcall(self->decode, call, 2, NULL) : NULL;
                Py_XDECREF(call[0]);
            }
            Py_DECREF(bytes);
            return r;
        }
        int empty = hdr[R_COUNT] == 0;
        pthread_mutex_unlock(self->mutex);
        if (!empty || !spins)
            break;
        /* Empty: an item is often a few microseconds away; look before the Python path
         * parks. */
        while (spins && !LOAD(&hdr[R_COUNT]) && !LOAD(&hdr[R_CLOSED])) {
            spins--;
            CPU_RELAX();
        }
        if (!spins || !LOAD(&hdr[R_COUNT]))
            break;
    }
    return PyObject_Vectorcall(self->get_py, vals, 2, NULL);
}

static PyMethodDef ringport_methods[] = {
    {"put", (PyCFunction)(void (*)(void))ringport_put, METH_FASTCALL | METH_KEYWORDS,
     "put(item, block=True, timeout=None): SharedQueue.put, its common case in C."},
    {"get", (PyCFunction)(void (*)(void))ringport_get, METH_FASTCALL | METH_KEYWORDS,
     "get(block=True, timeout=None): SharedQueue.get, its common case in C."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RingPortType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "plait._speedups.RingPort",
    .tp_basicsize = sizeof(RingPortObject),
    .tp_dealloc = (destructor)ringport_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A shared queue's put/get fast paths over its ring (see plait/_speedups.c).",
    .tp_traverse = (traverseproc)ringport_traverse,
    .tp_clear = (inquiry)ringport_clear,
    .tp_methods = ringport_methods,
    .tp_new = ringport_new,
};

/* -- module --------------------------------------------------------------------------- */

static Py_ssize_t
slot_offset(PyObject *descr, const char *what)
{
    if (!PyObject_TypeCheck(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "%s must be a __slots__ member descriptor", what);
        return -1;
    }
    PyMemberDef *def = ((PyMemberDescrObject *)descr)->d_member;
    if (def->type != T_OBJECT_EX && def->type != T_OBJECT) {
        PyErr_Format(PyExc_TypeError, "%s must be an object slot", what);
        return -1;
    }
    return def->offset;
}

static int
offset_of(PyObject *cls, const char *name, Py_ssize_t *out)
{
    PyObject *descr = PyObject_GetAttrString(cls, name);
    if (descr == NULL)
        return -1;
    Py_ssize_t off = slot_offset(descr, name);
    Py_DECREF(descr);
    if (off < 0)
        return -1;
    *out = off;
    return 0;
}

static PyObject *
kw(PyObject *kwargs, const char *name)
{
    PyObject *v = kwargs ? PyDict_GetItemString(kwargs, name) : NULL;
    if (v == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_TypeError, "configure() needs %s=", name);
    return v; /* borrowed */
}

/* The slow-path entry points configure() takes, in the order of the fn_* variables. */
static const char *entry_names[] = {"_put_locked", "_get_locked", "_async_put_locked",
                                    "_async_get_locked", "_anext_locked", "_handoff",
                                    "_offer_slot", "_woken_getter", "_abandon", "_undo_get"};
#define N_ENTRIES 10

static PyObject *
configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args)) {
        PyErr_SetString(PyExc_TypeError, "configure() takes keyword arguments only");
        return NULL;
    }
    PyObject *wq_t = kw(kwargs, "WaitQueue"), *w_t = kw(kwargs, "Waiter");
    PyObject *st_t = kw(kwargs, "Strand");
    PyObject *hk = kw(kwargs, "hooks"), *wk = kw(kwargs, "wake");
    PyObject *ct = kw(kwargs, "current_tasks"), *bt = kw(kwargs, "by_task");
    PyObject *sst = kw(kwargs, "self_strand_types"), *grl = kw(kwargs, "get_running_loop");
    PyObject *res = kw(kwargs, "RESERVED"), *qd = kw(kwargs, "QUEUED"), *wn = kw(kwargs, "WOKEN");
    PyObject *cn = kw(kwargs, "CANCELLED"), *entry = kw(kwargs, "entry");
    if (!wq_t || !w_t || !st_t || !hk || !wk || !ct || !bt || !sst || !grl || !res || !qd ||
        !wn || !cn || !entry)
        return NULL;
    if (PyDict_GET_SIZE(kwargs) != 14) {
        PyErr_SetString(PyExc_TypeError, "configure(): unexpected keyword arguments");
        return NULL;
    }
    if (!PyType_Check(wq_t) || !PyType_Check(w_t) || !PyType_Check(st_t) ||
        !PyCallable_Check(wk) || !(ct == Py_None || PyDict_Check(ct)) ||
        !(bt == Py_None || PyDict_Check(bt)) || !PyAnySet_Check(sst) ||
        !PyCallable_Check(grl) || !PyDict_Check(entry)) {
        PyErr_SetString(PyExc_TypeError, "configure(): an argument has the wrong type");
        return NULL;
    }
    PyObject *fns[N_ENTRIES];
    if (PyDict_GET_SIZE(entry) != N_ENTRIES) {
        PyErr_Format(PyExc_TypeError, "configure(): entry= needs exactly %d functions",
                     N_ENTRIES);
        return NULL;
    }
    for (int i = 0; i < N_ENTRIES; i++) {
        fns[i] = PyDict_GetItemString(entry, entry_names[i]); /* borrowed */
        if (fns[i] == NULL || !PyCallable_Check(fns[i])) {
            PyErr_Format(PyExc_TypeError, "configure(): entry['%s'] must be a function",
                         entry_names[i]);
            return NULL;
        }
    }
    static const char *strand_fields[] = {"state", "parked_on", "waiter", "loop", "kind", "sid"};
    Py_ssize_t soffs[6];
    for (int i = 0; i < 6; i++) {
        if (offset_of(st_t, strand_fields[i], &soffs[i]) < 0)
            return NULL;
    }
    Py_ssize_t sid_offset = soffs[5];
    Py_ssize_t offs[18];
    static const char *wnames[] = {"queue", "strand", "on", "data", "state", "value", "lock",
                                   "fut", "loop", "interruptible", "ident", "undo", "handle",
                                   "started"};
    for (int i = 0; i < 14; i++)
        if (offset_of(w_t, wnames[i], &offs[i]) < 0)
            return NULL;
    if (offset_of(wq_t, "_count", &offs[14]) < 0 || offset_of(wq_t, "_dq", &offs[15]) < 0 ||
        offset_of((PyObject *)Py_TYPE(hk), "active", &offs[16]) < 0 ||
        offset_of((PyObject *)Py_TYPE(hk), "lane", &offs[17]) < 0)
        return NULL;
    PyObject *sent = PyObject_GetAttrString(hk, "sent");
    PyObject *received = sent ? PyObject_GetAttrString(hk, "received") : NULL;
    if (received == NULL) {
        Py_XDECREF(sent);
        return NULL;
    }
    Py_XSETREF(hook_sent, sent);
    Py_XSETREF(hook_received, received);
    w_queue = offs[0], w_strand = offs[1], w_on = offs[2], w_data = offs[3];
    w_state = offs[4], w_value = offs[5], w_lock = offs[6], w_fut = offs[7], w_loop = offs[8];
    w_interruptible = offs[9], w_ident = offs[10], w_undo = offs[11], w_handle = offs[12];
    w_started = offs[13];
    wq_count = offs[14], wq_dq = offs[15], active_offset = offs[16];
    lane_offset = offs[17];
    strand_sid = sid_offset; /* (the last of strand_fields) */
    strand_loop = soffs[3], strand_kind = soffs[4];
#define KEEP(var, value) do { Py_INCREF(value); Py_XSETREF(var, value); } while (0)
    KEEP(fn_put_locked, fns[0]);
    KEEP(fn_get_locked, fns[1]);
    KEEP(fn_async_put_locked, fns[2]);
    KEEP(fn_async_get_locked, fns[3]);
    KEEP(fn_anext_locked, fns[4]);
    KEEP(fn_handoff, fns[5]);
    KEEP(fn_offer_slot, fns[6]);
    KEEP(fn_woken_getter, fns[7]);
    KEEP(fn_abandon, fns[8]);
    KEEP(fn_undo_get, fns[9]);
    KEEP(waitqueue_type, (PyTypeObject *)wq_t);
    KEEP(waiter_type, (PyTypeObject *)w_t);
    KEEP(strand_type, (PyTypeObject *)st_t);
    KEEP(hooks, hk);
    KEEP(current_tasks, ct);
    KEEP(by_task, bt);
    KEEP(self_strand_types, sst);
    KEEP(get_running_loop, grl);
    KEEP(RESERVED, res);
    KEEP(QUEUED, qd);
    KEEP(WOKEN, wn);
    KEEP(CANCELLED, cn);
    KEEP(wake_fn, wk); /* last: the fast paths run once it is set (see usable()) */
#undef KEEP
    Py_RETURN_NONE;
}

/* methods_for(cls): QueueCore's methods again, as method descriptors of ``cls`` (Queue). A
 * call through a C method descriptor takes CPython's quick path only when the instance's
 * type is exactly the descriptor's class, which a Queue never is for QueueCore's own: every
 * put/get then goes the generic way (a subtype check per call). */
static PyObject *
methods_for(PyObject *module, PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &CoreType)) {
        PyErr_SetString(PyExc_TypeError, "methods_for(cls): cls must subclass QueueCore");
        return NULL;
    }
    PyObject *methods = PyDict_New();
    if (methods == NULL)
        return NULL;
    for (PyMethodDef *def = core_methods; def->ml_name != NULL; def++) {
        PyObject *descr = PyDescr_NewMethod((PyTypeObject *)cls, def);
        if (descr == NULL || PyDict_SetItemString(methods, def->ml_name, descr) < 0) {
            Py_XDECREF(descr);
            Py_DECREF(methods);
            return NULL;
        }
        Py_DECREF(descr);
    }
    return methods;
}

/* configure_wait(park, got): parking.park and Queue._got, for wait_get(). Called once the
 * queue is configured (plait/_channels/_queue_speedups.py); until then, no such wait. */
static PyObject *
configure_wait(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyCallable_Check(args[0]) || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "configure_wait(park, got)");
        return NULL;
    }
    if (str_enqueue_current == NULL &&
        (str_enqueue_current = PyUnicode_InternFromString("enqueue_current")) == NULL)
        return NULL;
    Py_XSETREF(fn_got, Py_NewRef(args[1]));
    Py_XSETREF(fn_park, Py_NewRef(args[0])); /* last: wait_get() runs once it is set */
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "configure(**kernel): the kernel's classes and objects the fast paths work with\n"
     "(WaitQueue, Waiter, Strand, hooks, wake, current_tasks, by_task, self_strand_types,\n"
     "get_running_loop, RESERVED, QUEUED, WOKEN, CANCELLED) and entry, the Python slow\n"
     "paths by name. Raises if any is missing or not what the fast paths expect; until it\n"
     "succeeds, no fast path is taken."},
    {"methods_for", (PyCFunction)methods_for, METH_O,
     "methods_for(cls): QueueCore's methods as cls's own (CPython's quick call path)."},
    {"configure_wait", (PyCFunction)(void (*)(void))configure_wait, METH_FASTCALL,
     "configure_wait(park, got): parking.park and Queue._got, for a blocking get's wait."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "plait._speedups",
    .m_doc = "The queue's hot paths in C; plait falls back to pure Python without it.",
    .m_size = -1,
    .m_methods = module_methods,
};

/* The ring layout the RingPort writes (plait/_channels/_xproc.py checks it at import). */
static int
add_ring_layout(PyObject *m)
{
    PyObject *t = Py_BuildValue("(iiiiiiiiiiiii)", R_HEAD, R_TAIL, R_COUNT, R_UNFINISHED,
                                R_CLOSED, R_PUT_GATE, R_OVF_FIRST, K_INLINE, K_BYTES,
                                K_BYTEARRAY, K_INT, W_GET, W_PUT);
    if (t == NULL)
        return -1;
    int rc = PyModule_AddObjectRef(m, "RING_LAYOUT", t);
    Py_DECREF(t);
    return rc;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (PyType_Ready(&MutexType) < 0 || PyType_Ready(&OpType) < 0 ||
        PyType_Ready(&CoreType) < 0 || PyType_Ready(&RingPortType) < 0)
        return NULL;
    const char *gate_env = getenv("PLAIT_PUT_GATE");
    put_gate_on = gate_env != NULL && strcmp(gate_env, "1") == 0;
    str_blocking = PyUnicode_InternFromString("_asyncio_future_blocking");
    str_done = PyUnicode_InternFromString("done");
    str_close = PyUnicode_InternFromString("close");
    str_popleft = PyUnicode_InternFromString("popleft");
    str_append = PyUnicode_InternFromString("append");
    str_set_result = PyUnicode_InternFromString("set_result");
    str_create_future = PyUnicode_InternFromString("create_future");
    str_loop = PyUnicode_InternFromString("loop");
    str_kind = PyUnicode_InternFromString("kind");
    str_async = PyUnicode_InternFromString("async");
    str_thread_id = PyUnicode_InternFromString("_thread_id");
    str_state = PyUnicode_InternFromString("state");
    str_parked_on = PyUnicode_InternFromString("parked_on");
    str_waiter = PyUnicode_InternFromString("waiter");
    str_running = PyUnicode_InternFromString("running");
    str_parked = PyUnicode_InternFromString("parked");
    str_tls_key = PyUnicode_InternFromString("plait._speedups.loop");
    str_sid = PyUnicode_InternFromString("sid");
    if (lane_init() < 0 || !str_sid || !str_blocking || !str_done || !str_close ||
        !str_popleft || !str_append || !str_set_result || !str_create_future ||
        !str_loop || !str_kind || !str_async || !str_thread_id || !str_state || !str_parked_on ||
        !str_waiter || !str_running || !str_parked || !str_tls_key)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    /* The version of the seam with plait/_channels/_queue.py (configure()'s arguments, the
     * entry points, the members): _queue.py refuses a module built from another version. */
    if (PyModule_AddIntConstant(m, "SEAM", SEAM_VERSION) < 0 ||
        PyModule_AddObjectRef(m, "Mutex", (PyObject *)&MutexType) < 0 ||
        PyModule_AddObjectRef(m, "QueueOp", (PyObject *)&OpType) < 0 ||
        PyModule_AddObjectRef(m, "QueueCore", (PyObject *)&CoreType) < 0 ||
        PyModule_AddObjectRef(m, "RingPort", (PyObject *)&RingPortType) < 0 ||
        add_ring_layout(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
