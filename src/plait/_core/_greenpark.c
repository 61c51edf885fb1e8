/* plait._core._greenpark: the switch step of green strands in C.
 *
 * A parked green strand is resumed by its loop's hub (plait/_core/green.py, whose Python
 * _Resume and _Scheduler are the reference and the fallback: PLAIT_NO_SPEEDUPS=1, or this
 * module not built). Two types do the same work here, with no Python frame per switch:
 *
 *   Resume     what a green strand's waiter holds in the place of a future: done(),
 *              set_result(v) (makes the strand ready, once); members greenlet, error.
 *   Scheduler  one loop's ready strands and its hub: wake(resume), run() (the loop
 *              callback that switches to the hub), and the hub's body, which steps up to
 *              `batch` ready strands (setting the thread's current strand for each) and
 *              switches back; start(fn, strand, end, by_context) makes a green strand's
 *              greenlet and queues its start (the greenlet itself, no Resume), and the hub
 *              calls end(strand, g) when it has ended (no future, no Python frame between).
 *
 * Building needs no greenlet headers: configure() hands this module greenlet's type and
 * plait's thread-local strand slot the first time a green strand starts, and takes
 * greenlet's C API from its capsule at run time when its table matches (else greenlet is
 * called through its Python API: switch, throw, parent, dead).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

static PyObject *greenlet_type = NULL; /* greenlet.greenlet */
static PyObject *getcurrent = NULL;    /* greenlet.getcurrent */
static PyObject *strand_local = NULL;  /* plait._core.strands._local */
static PyObject *green_type = NULL;    /* the greenlet subclass of green strands */

/* The member descriptors of plait._core.parking.Waiter's and WaitQueue's slots (set by
 * configure_park()): a green wait's waiter is made and queued with no Python frame. */
enum {
    W_QUEUE, W_STRAND, W_ON, W_DATA, W_STATE, W_VALUE, W_LOCK, W_FUT, W_LOOP, W_INTERRUPTIBLE,
    W_IDENT, W_UNDO, W_HANDLE, W_STARTED, W_COUNT
};
static const char *waiter_slots[W_COUNT] = {
    "queue", "strand", "on",    "data",  "state",   "value", "lock",
    "fut",   "loop",   "interruptible",  "ident",   "undo",  "handle", "started"};
static PyObject *waiter_descr[W_COUNT];
static PyTypeObject *waiter_type = NULL;
static PyObject *queue_dq = NULL, *queue_count = NULL; /* WaitQueue._dq, ._count */
static PyObject *int_queued = NULL, *int_woken = NULL; /* QUEUED, WOKEN */
static PyObject *park_hooks = NULL;                    /* instruments.hooks */
static PyObject *park_abandon = NULL, *park_done = NULL; /* parking._green_abandon, _wait_done */
static PyObject *int_one = NULL;
static PyObject *str_parked, *str_running, *str_parked_on, *str_state, *str_waiter,
    *str_append, *str_active;

static PyObject *str_switch, *str_throw, *str_parent, *str_dead, *str_waiting, *str_strand,
    *str_outcome, *str_done, *str_set_result, *str_call_soon, *str_scheduler, *str_dict,
    *str_end, *str_gr_context;

/* The live green strands by id() of their context (plait._core.strands.green_by_context),
 * as handed to Scheduler.start(): the hub drops a strand's entry at its end. */
static PyObject *by_context = NULL;

/* greenlet's C API (its capsule "greenlet._C_API", when it matches greenlet 3's layout):
 * a switch with no method lookup. Without it, the same calls go through greenlet's Python
 * API. The slots are greenlet's documented PyGreenlet_*_NUM indices. */
typedef struct {
    PyObject *(*getcurrent)(void);
    PyObject *(*throw_)(PyObject *, PyObject *, PyObject *, PyObject *);
    PyObject *(*switch_)(PyObject *, PyObject *, PyObject *);
    int (*set_parent)(PyObject *, PyObject *);
    int (*started)(PyObject *);
    int (*active)(PyObject *);
    PyObject *(*get_parent)(PyObject *);
} GreenletAPI;
static GreenletAPI capi;
static int have_capi = 0;
static PyObject *empty_tuple = NULL;

static void
load_capi(PyObject *type)
{
    have_capi = 0;
    void **api = (void **)PyCapsule_Import("greenlet._C_API", 0);
    if (api == NULL) {
        PyErr_Clear();
        return;
    }
    if (api[0] != (void *)type) /* not the layout this was written for: the Python API */
        return;
    capi.getcurrent = (PyObject * (*)(void)) api[4];
    capi.throw_ = (PyObject * (*)(PyObject *, PyObject *, PyObject *, PyObject *)) api[5];
    capi.switch_ = (PyObject * (*)(PyObject *, PyObject *, PyObject *)) api[6];
    capi.set_parent = (int (*)(PyObject *, PyObject *))api[7];
    capi.started = (int (*)(PyObject *))api[9];
    capi.active = (int (*)(PyObject *))api[10];
    capi.get_parent = (PyObject * (*)(PyObject *)) api[11];
    have_capi = 1;
}

/* g.switch() */
static PyObject *
gl_switch(PyObject *g)
{
    if (have_capi)
        return capi.switch_(g, empty_tuple, NULL);
    return PyObject_CallMethodNoArgs(g, str_switch);
}

/* g.parent.switch() */
static PyObject *
gl_switch_parent(PyObject *g)
{
    PyObject *parent = have_capi ? capi.get_parent(g) : PyObject_GetAttr(g, str_parent);
    if (parent == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "a green strand's greenlet has no parent");
        return NULL;
    }
    PyObject *r = gl_switch(parent);
    Py_DECREF(parent);
    return r;
}


static int
not_configured(void)
{
    if (greenlet_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "plait._core._greenpark is not configured: green strands call "
                        "configure() before their first switch");
        return 1;
    }
    return 0;
}

/* -- Resume ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *greenlet;
    PyObject *error;
    char done;
} Resume;

typedef struct {
    PyObject_HEAD
    PyObject *loop;
    PyObject *hub;
    PyObject *run; /* bound self.run, call_soon'd */
    PyObject **ring;
    Py_ssize_t cap, head, count;
    long ident;
    int batch;
    char scheduled;
} Scheduler;

static PyTypeObject Resume_Type;
static PyTypeObject Scheduler_Type;

static int scheduler_wake(Scheduler *self, PyObject *resume);

static PyObject *
Resume_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"greenlet", "error", NULL};
    PyObject *g, *error = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:Resume", kwlist, &g, &error))
        return NULL;
    Resume *self = (Resume *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->greenlet = Py_NewRef(g);
    self->error = Py_NewRef(error);
    self->done = 0;
    return (PyObject *)self;
}

static int
Resume_traverse(Resume *self, visitproc visit, void *arg)
{
    Py_VISIT(self->greenlet);
    Py_VISIT(self->error);
    return 0;
}

static int
Resume_clear(Resume *self)
{
    Py_CLEAR(self->greenlet);
    Py_CLEAR(self->error);
    return 0;
}

static void
Resume_dealloc(Resume *self)
{
    PyObject_GC_UnTrack(self);
    Resume_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Resume_done(Resume *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->done);
}

static PyObject *
Resume_set_result(Resume *self, PyObject *Py_UNUSED(value))
{
    if (self->done)
        Py_RETURN_NONE;
    self->done = 1;
    if (self->greenlet == NULL)
        Py_RETURN_NONE;
    PyObject *scheduler = PyObject_GetAttr(self->greenlet, str_scheduler);
    if (scheduler == NULL)
        return NULL;
    int rc;
    if (Py_IS_TYPE(scheduler, &Scheduler_Type)) {
        rc = scheduler_wake((Scheduler *)scheduler, (PyObject *)self);
    } else { /* a Python scheduler (only if the two were mixed: its wake() does it) */
        PyObject *r = PyObject_CallMethod(scheduler, "wake", "O", (PyObject *)self);
        rc = r == NULL ? -1 : 0;
        Py_XDECREF(r);
    }
    Py_DECREF(scheduler);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Resume_repr(Resume *self)
{
    return PyUnicode_FromFormat("<Resume of %R%s>", self->greenlet,
                                self->done ? " (set)" : "");
}

static PyMethodDef Resume_methods[] = {
    {"done", (PyCFunction)Resume_done, METH_NOARGS, "Whether set_result() was called."},
    {"set_result", (PyCFunction)Resume_set_result, METH_O,
     "Make the strand ready to go on (once; later calls do nothing)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Resume_members[] = {
    {"greenlet", T_OBJECT, offsetof(Resume, greenlet), READONLY, "the green strand's greenlet"},
    {"error", T_OBJECT, offsetof(Resume, error), READONLY,
     "thrown in instead of resuming (its cancellation), or None"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject Resume_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "plait._core._greenpark.Resume",
    .tp_basicsize = sizeof(Resume),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Resume(greenlet, error=None): a green strand's wake-up, in a future's place.",
    .tp_new = Resume_new,
    .tp_dealloc = (destructor)Resume_dealloc,
    .tp_traverse = (traverseproc)Resume_traverse,
    .tp_clear = (inquiry)Resume_clear,
    .tp_methods = Resume_methods,
    .tp_members = Resume_members,
    .tp_repr = (reprfunc)Resume_repr,
};

/* -- Scheduler ------------------------------------------------------------------------- */

static int
ring_push(Scheduler *self, PyObject *item)
{
    if (self->count == self->cap) {
        Py_ssize_t cap = self->cap ? self->cap * 2 : 64;
        PyObject **ring = PyMem_New(PyObject *, cap);
        if (ring == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < self->count; i++)
            ring[i] = self->ring[(self->head + i) % self->cap];
        PyMem_Free(self->ring);
        self->ring = ring;
        self->cap = cap;
        self->head = 0;
    }
    self->ring[(self->head + self->count) % self->cap] = Py_NewRef(item);
    self->count++;
    return 0;
}

static PyObject *
ring_pop(Scheduler *self) /* new reference; the caller checked count > 0 */
{
    PyObject *item = self->ring[self->head];
    self->head = (self->head + 1) % self->cap;
    self->count--;
    return item;
}

static int
call_soon_run(Scheduler *self)
{
    PyObject *r = PyObject_CallMethodOneArg(self->loop, str_call_soon, self->run);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int
scheduler_wake(Scheduler *self, PyObject *resume)
{
    if (ring_push(self, resume) < 0)
        return -1;
    if (!self->scheduled) {
        self->scheduled = 1;
        if (call_soon_run(self) < 0) {
            self->scheduled = 0;
            return -1;
        }
    }
    return 0;
}

static PyObject *new_hub(Scheduler *self);

static PyObject *
Scheduler_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", "ident", "batch", NULL};
    PyObject *loop;
    long ident;
    int batch = 256;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Ol|i:Scheduler", kwlist, &loop, &ident,
                                     &batch))
        return NULL;
    if (not_configured())
        return NULL;
    if (batch < 1) {
        PyErr_SetString(PyExc_ValueError, "Scheduler batch must be at least 1");
        return NULL;
    }
    Scheduler *self = (Scheduler *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->loop = Py_NewRef(loop);
    self->ident = ident;
    self->batch = batch;
    self->run = PyObject_GetAttrString((PyObject *)self, "run");
    if (self->run == NULL || (self->hub = new_hub(self)) == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
Scheduler_traverse(Scheduler *self, visitproc visit, void *arg)
{
    Py_VISIT(self->loop);
    Py_VISIT(self->hub);
    Py_VISIT(self->run);
    for (Py_ssize_t i = 0; i < self->count; i++)
        Py_VISIT(self->ring[(self->head + i) % self->cap]);
    return 0;
}

static int
Scheduler_clear(Scheduler *self)
{
    Py_CLEAR(self->loop);
    Py_CLEAR(self->hub);
    Py_CLEAR(self->run);
    while (self->count > 0) {
        PyObject *item = ring_pop(self);
        Py_DECREF(item);
    }
    return 0;
}

static void
Scheduler_dealloc(Scheduler *self)
{
    PyObject_GC_UnTrack(self);
    Scheduler_clear(self);
    PyMem_Free(self->ring);
    self->ring = NULL;
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Scheduler_wake(Scheduler *self, PyObject *resume)
{
    if (!Py_IS_TYPE(resume, &Resume_Type)) { /* (the ring takes no other kind from here) */
        PyErr_Format(PyExc_TypeError, "Scheduler.wake() takes a Resume, not %R", resume);
        return NULL;
    }
    if (scheduler_wake(self, resume) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int
is_dead(PyObject *g)
{
    if (have_capi)
        return capi.started(g) && !capi.active(g);
    PyObject *dead = PyObject_GetAttr(g, str_dead);
    if (dead == NULL)
        return -1;
    int r = PyObject_IsTrue(dead);
    Py_DECREF(dead);
    return r;
}

/* The loop callback: switch to the hub, which comes back here after its batch. */
static PyObject *
Scheduler_run(Scheduler *self, PyObject *Py_UNUSED(ignored))
{
    if (self->hub == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the green scheduler was cleared");
        return NULL;
    }
    int dead = is_dead(self->hub);
    if (dead < 0)
        return NULL;
    if (dead) { /* only if the hub itself failed */
        PyObject *hub = new_hub(self);
        if (hub == NULL)
            return NULL;
        Py_SETREF(self->hub, hub);
    }
    PyObject *here = have_capi ? capi.getcurrent() : PyObject_CallNoArgs(getcurrent);
    if (here == NULL)
        return NULL;
    int rc = have_capi ? capi.set_parent(self->hub, here)
                       : PyObject_SetAttr(self->hub, str_parent, here);
    Py_DECREF(here);
    if (rc < 0)
        return NULL;
    PyObject *r = gl_switch(self->hub);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* The outcome of a switch into `g` that raised: (False, exception). */
static PyObject *
failed_outcome(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException();
#else
    PyObject *typ, *exc, *tb;
    PyErr_Fetch(&typ, &exc, &tb);
    PyErr_NormalizeException(&typ, &exc, &tb);
    if (tb != NULL && exc != NULL)
        PyException_SetTraceback(exc, tb);
    Py_XDECREF(typ);
    Py_XDECREF(tb);
#endif
    if (exc == NULL)
        exc = Py_NewRef(Py_None);
    PyObject *outcome = PyTuple_Pack(2, Py_False, exc);
    Py_DECREF(exc);
    return outcome;
}

/* A green strand that start() started has ended (its outcome set): forget its context,
 * then call end(strand, g) (steals the reference to `end`). */
static int
finish_started(PyObject *g, PyObject *end)
{
    if (PyObject_SetAttr(g, str_end, Py_None) < 0)
        goto fail;
    if (by_context != NULL) {
        PyObject *context = PyObject_GetAttr(g, str_gr_context);
        if (context == NULL)
            goto fail;
        PyObject *key = PyLong_FromVoidPtr(context);
        Py_DECREF(context);
        if (key == NULL)
            goto fail;
        int rc = PyDict_DelItem(by_context, key);
        Py_DECREF(key);
        if (rc < 0) {
            if (!PyErr_ExceptionMatches(PyExc_KeyError))
                goto fail;
            PyErr_Clear();
        }
    }
    PyObject *strand = PyObject_GetAttr(g, str_strand);
    if (strand == NULL)
        goto fail;
    PyObject *args[2] = {strand, g};
    PyObject *r = PyObject_Vectorcall(end, args, 2, NULL);
    Py_DECREF(strand);
    Py_DECREF(end);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
fail:
    Py_DECREF(end);
    return -1;
}

/* Step green strand `g` (popped as `marker`: its resume, or itself for its start) until its
 * next wait or its end; `error`: thrown in instead (None: resume it). */
static int
step(PyObject *local, PyObject *g, PyObject *marker, PyObject *error)
{
    PyObject *waiting = PyObject_GetAttr(g, str_waiting);
    if (waiting == NULL)
        return -1;
    Py_DECREF(waiting);
    if (waiting != marker)
        return 0; /* it left that wait already: it was cancelled */
    if (PyObject_SetAttr(g, str_waiting, Py_None) < 0)
        return -1;
    PyObject *strand = PyObject_GetAttr(g, str_strand);
    if (strand == NULL)
        return -1;
    int rc = PyDict_SetItem(local, str_strand, strand);
    Py_DECREF(strand);
    if (rc < 0)
        return -1;
    PyObject *out, *outcome;
    if (error != Py_None) {
        PyObject *typ = (PyObject *)Py_TYPE(error);
        if (have_capi) {
            out = capi.throw_(g, typ, error, NULL);
        } else {
            PyObject *args[3] = {g, typ, error};
            out = PyObject_VectorcallMethod(str_throw, args,
                                            3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        }
    } else {
        out = gl_switch(g);
    }
    if (out == NULL) {
        outcome = failed_outcome(); /* the strand's outcome, for its task */
    } else {
        int dead = is_dead(g);
        if (dead <= 0) {
            Py_DECREF(out);
            return dead;
        }
        outcome = PyTuple_Pack(2, Py_True, out);
        Py_DECREF(out);
    }
    if (outcome == NULL)
        return -1;
    rc = PyObject_SetAttr(g, str_outcome, outcome);
    Py_DECREF(outcome);
    if (rc < 0)
        return -1;
    PyObject *end = PyObject_GetAttr(g, str_end);
    if (end == NULL)
        return -1;
    if (end != Py_None) /* started by start(): end(strand, g), no future in between */
        return finish_started(g, end);
    Py_DECREF(end);
    PyObject *done = PyObject_GetAttr(g, str_done);
    if (done == NULL)
        return -1;
    PyObject *is_done = PyObject_CallMethodNoArgs(done, str_done);
    int already = is_done == NULL ? -1 : PyObject_IsTrue(is_done);
    Py_XDECREF(is_done);
    if (already == 0) {
        PyObject *r = PyObject_CallMethodOneArg(done, str_set_result, Py_None);
        already = r == NULL ? -1 : 1;
        Py_XDECREF(r);
    }
    Py_DECREF(done);
    return already < 0 ? -1 : 0;
}

/* The hub's body: step up to `batch` ready strands, switch back, again when run(). */
static PyObject *
Scheduler_hub(Scheduler *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *local = PyObject_GetAttr(strand_local, str_dict); /* this thread's dict */
    if (local == NULL)
        return NULL;
    for (;;) {
        PyObject *before = PyDict_GetItemWithError(local, str_strand);
        if (before == NULL && PyErr_Occurred())
            goto fail;
        Py_XINCREF(before);
        int failed = 0;
        for (int i = 0; i < self->batch && self->count > 0; i++) {
            PyObject *item = ring_pop(self);
            if (Py_IS_TYPE(item, &Resume_Type)) {
                Resume *resume = (Resume *)item;
                PyObject *g = Py_XNewRef(resume->greenlet);
                if (g != NULL && step(local, g, item, resume->error) < 0)
                    failed = 1;
                Py_XDECREF(g);
            } else if (step(local, item, item, Py_None) < 0) { /* a start (start()) */
                failed = 1;
            }
            Py_DECREF(item);
            if (failed)
                break;
        }
        if (!failed) {
            int rc = before == NULL ? PyDict_DelItem(local, str_strand)
                                    : PyDict_SetItem(local, str_strand, before);
            if (rc < 0 && before == NULL && PyErr_ExceptionMatches(PyExc_KeyError)) {
                PyErr_Clear();
                rc = 0;
            }
            failed = rc < 0;
        }
        Py_XDECREF(before);
        if (failed)
            goto fail;
        if (self->count > 0) {
            if (call_soon_run(self) < 0)
                goto fail;
        } else {
            self->scheduled = 0;
        }
        PyObject *r = gl_switch_parent(self->hub);
        if (r == NULL)
            goto fail;
        Py_DECREF(r);
    }
fail: /* the hub dies with the error: run() raises it (the loop reports it) */
    Py_DECREF(local);
    self->scheduled = 0;
    return NULL;
}

static PyMethodDef hub_def = {"hub", (PyCFunction)Scheduler_hub, METH_NOARGS,
                              "The hub greenlet's body."};

static PyObject *
new_hub(Scheduler *self)
{
    PyObject *body = PyCFunction_New(&hub_def, (PyObject *)self);
    if (body == NULL)
        return NULL;
    PyObject *hub = PyObject_CallOneArg(greenlet_type, body);
    Py_DECREF(body);
    return hub;
}

static PyObject *
Scheduler_get_scheduled(Scheduler *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->scheduled);
}

static PyObject *
Scheduler_get_ready(Scheduler *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->count);
}

/* start(fn, strand, end, by_context): fn() in a new green strand greenlet on this loop, in
 * a copy of the caller's context, ready to run; end(strand, g) once it has ended. */
static PyObject *
Scheduler_start(Scheduler *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "start(fn, strand, end, by_context) takes 4 arguments");
        return NULL;
    }
    if (green_type == NULL || self->hub == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "start(): the green scheduler is not configured");
        return NULL;
    }
    PyObject *fn = args[0], *strand = args[1], *end = args[2], *contexts = args[3];
    if (!PyDict_CheckExact(contexts)) {
        PyErr_SetString(PyExc_TypeError, "start(): by_context must be a dict");
        return NULL;
    }
    if (by_context != contexts)
        Py_XSETREF(by_context, Py_NewRef(contexts));
    PyObject *gargs[2] = {fn, self->hub};
    PyObject *g = PyObject_Vectorcall(green_type, gargs, 2, NULL);
    if (g == NULL)
        return NULL;
    PyObject *context = PyContext_CopyCurrent();
    if (context == NULL || PyObject_SetAttr(g, str_gr_context, context) < 0)
        goto fail;
    PyObject *key = PyLong_FromVoidPtr(context);
    if (key == NULL)
        goto fail;
    int rc = PyDict_SetItem(contexts, key, strand); /* (a lock's fast path records it) */
    Py_DECREF(key);
    if (rc < 0)
        goto fail;
    /* Its start is queued as the greenlet itself (waiting: itself, until the hub first
     * switches in; a cancel before that puts its own resume there, which skips it). */
    if (PyObject_SetAttr(g, str_strand, strand) < 0 ||
        PyObject_SetAttr(g, str_done, Py_None) < 0 ||
        PyObject_SetAttr(g, str_outcome, Py_None) < 0 ||
        PyObject_SetAttr(g, str_scheduler, (PyObject *)self) < 0 ||
        PyObject_SetAttr(g, str_end, end) < 0 ||
        PyObject_SetAttr(g, str_waiting, g) < 0 || scheduler_wake(self, g) < 0)
        goto fail;
    Py_DECREF(context);
    return g;
fail:
    Py_XDECREF(context);
    Py_DECREF(g);
    return NULL;
}

static PyMethodDef Scheduler_methods[] = {
    {"wake", (PyCFunction)Scheduler_wake, METH_O, "Make a resume's strand ready."},
    {"start", (PyCFunction)(void (*)(void))Scheduler_start, METH_FASTCALL,
     "start(fn, strand, end, by_context): start fn() as a green strand (its greenlet)."},
    {"run", (PyCFunction)Scheduler_run, METH_NOARGS,
     "The loop callback: switch to the hub for one batch."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Scheduler_members[] = {
    {"loop", T_OBJECT, offsetof(Scheduler, loop), READONLY, "the event loop"},
    {"hub", T_OBJECT, offsetof(Scheduler, hub), READONLY, "the hub greenlet"},
    {"ident", T_LONG, offsetof(Scheduler, ident), READONLY, "the loop's thread"},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef Scheduler_getset[] = {
    {"scheduled", (getter)Scheduler_get_scheduled, NULL, "a run() is due", NULL},
    {"ready_count", (getter)Scheduler_get_ready, NULL, "strands ready to go on", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject Scheduler_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "plait._core._greenpark.Scheduler",
    .tp_basicsize = sizeof(Scheduler),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Scheduler(loop, ident, batch=256): one loop's ready green strands and hub.",
    .tp_new = Scheduler_new,
    .tp_dealloc = (destructor)Scheduler_dealloc,
    .tp_traverse = (traverseproc)Scheduler_traverse,
    .tp_clear = (inquiry)Scheduler_clear,
    .tp_methods = Scheduler_methods,
    .tp_members = Scheduler_members,
    .tp_getset = Scheduler_getset,
};

/* -- the green wait: enqueue and park -------------------------------------------------- */

static int
descr_set(PyObject *descr, PyObject *obj, PyObject *value)
{
    return Py_TYPE(descr)->tp_descr_set(descr, obj, value);
}

static PyObject *
descr_get(PyObject *descr, PyObject *obj)
{
    return Py_TYPE(descr)->tp_descr_get(descr, obj, (PyObject *)Py_TYPE(obj));
}

static int
park_not_configured(void)
{
    if (waiter_type == NULL || green_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "plait._core._greenpark is not configured: plait._core.green calls "
                        "configure() and configure_park() before the first green wait");
        return 1;
    }
    return 0;
}

/* enqueue(queue, g, on, data): WaitQueue.enqueue_current for green strand `g` (the caller
 * checked it is one): a waiter holding a Resume in its future's place, queued. */
static PyObject *
enqueue(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "enqueue(queue, greenlet, on, data)");
        return NULL;
    }
    if (park_not_configured())
        return NULL;
    PyObject *queue = args[0], *g = args[1];
    PyObject *values[W_COUNT] = {NULL};
    PyObject *waiter = NULL, *scheduler = NULL, *dq = NULL, *count = NULL, *r = NULL;
    PyObject *empty = PyTuple_New(0);
    if (empty == NULL)
        return NULL;
    waiter = waiter_type->tp_new(waiter_type, empty, NULL);
    Py_DECREF(empty);
    if (waiter == NULL)
        goto fail;
    scheduler = PyObject_GetAttr(g, str_scheduler);
    if (scheduler == NULL)
        goto fail;
    values[W_QUEUE] = Py_NewRef(queue);
    if ((values[W_STRAND] = PyObject_GetAttr(g, str_strand)) == NULL)
        goto fail;
    values[W_ON] = Py_NewRef(args[2]);
    values[W_DATA] = Py_NewRef(args[3]);
    values[W_STATE] = Py_NewRef(int_queued);
    values[W_VALUE] = Py_NewRef(Py_None);
    values[W_LOCK] = Py_NewRef(Py_None);
    if (Py_IS_TYPE(scheduler, &Scheduler_Type)) {
        Scheduler *sch = (Scheduler *)scheduler;
        values[W_LOOP] = Py_NewRef(sch->loop);
        values[W_IDENT] = PyLong_FromLong(sch->ident);
    } else {
        values[W_LOOP] = PyObject_GetAttrString(scheduler, "loop");
        values[W_IDENT] = PyObject_GetAttrString(scheduler, "ident");
    }
    if (values[W_LOOP] == NULL || values[W_IDENT] == NULL)
        goto fail;
    Resume *resume = PyObject_GC_New(Resume, &Resume_Type);
    if (resume == NULL)
        goto fail;
    resume->greenlet = Py_NewRef(g);
    resume->error = Py_NewRef(Py_None);
    resume->done = 0;
    PyObject_GC_Track(resume);
    values[W_FUT] = (PyObject *)resume;
    values[W_INTERRUPTIBLE] = Py_NewRef(Py_False);
    values[W_UNDO] = Py_NewRef(Py_None);
    values[W_HANDLE] = Py_NewRef(Py_None);
    values[W_STARTED] = Py_NewRef(Py_False);
    for (int i = 0; i < W_COUNT; i++)
        if (descr_set(waiter_descr[i], waiter, values[i]) < 0)
            goto fail;
    if ((dq = descr_get(queue_dq, queue)) == NULL)
        goto fail;
    if ((r = PyObject_CallMethodOneArg(dq, str_append, waiter)) == NULL)
        goto fail;
    if ((count = descr_get(queue_count, queue)) == NULL)
        goto fail;
    Py_SETREF(r, PyNumber_Add(count, int_one));
    if (r == NULL || descr_set(queue_count, queue, r) < 0)
        goto fail;
    goto done;
fail:
    Py_CLEAR(waiter);
done:
    for (int i = 0; i < W_COUNT; i++)
        Py_XDECREF(values[i]);
    Py_XDECREF(scheduler);
    Py_XDECREF(dq);
    Py_XDECREF(count);
    Py_XDECREF(r);
    return waiter;
}

/* WaitQueue.enqueue_current(on, data=None), installed over the Python method once a green
 * strand has started (enqueue_current_for()): a green strand's waiter is made here, with no
 * Python frame (`on` and `data` by position or keyword); every other caller -- a thread, a
 * coroutine's blocking call, a wrong argument --
 * goes on to the Python method (py_enqueue_current), unchanged. */
static PyObject *py_enqueue_current = NULL;

static PyObject *
wq_enqueue_current(PyObject *queue, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    /* (on, data=None), positional or by keyword */
    PyObject *on = nargs > 0 ? args[0] : NULL, *data = nargs > 1 ? args[1] : NULL;
    int plain = nargs <= 2;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; plain && i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (on == NULL && PyUnicode_CompareWithASCIIString(name, "on") == 0)
            on = args[nargs + i];
        else if (data == NULL && PyUnicode_CompareWithASCIIString(name, "data") == 0)
            data = args[nargs + i];
        else
            plain = 0; /* (the Python method says what is wrong) */
    }
    if (plain && on != NULL && waiter_type != NULL && green_type != NULL) {
        PyObject *g = have_capi ? capi.getcurrent() : PyObject_CallNoArgs(getcurrent);
        if (g == NULL)
            return NULL;
        if ((PyObject *)Py_TYPE(g) == green_type) {
            PyObject *a[4] = {queue, g, on, data != NULL ? data : Py_None};
            PyObject *waiter = enqueue(NULL, a, 4);
            Py_DECREF(g);
            return waiter;
        }
        Py_DECREF(g);
    }
    if (py_enqueue_current == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "enqueue_current_for() was not called");
        return NULL;
    }
    PyObject *small[8], **all = small;
    if (nargs + nkw + 1 > 8 && (all = PyMem_New(PyObject *, nargs + nkw + 1)) == NULL)
        return PyErr_NoMemory();
    all[0] = queue;
    for (Py_ssize_t i = 0; i < nargs + nkw; i++)
        all[i + 1] = args[i];
    PyObject *r = PyObject_Vectorcall(py_enqueue_current, all, nargs + 1, kwnames);
    if (all != small)
        PyMem_Free(all);
    return r;
}

static PyMethodDef wq_enqueue_current_def = {
    "enqueue_current", (PyCFunction)(void (*)(void))wq_enqueue_current,
    METH_FASTCALL | METH_KEYWORDS,
    "Queue a waiter for a blocking wait of the calling strand (a green strand's in C)."};

/* enqueue_current_for(WaitQueue, python_method): the method to install as
 * WaitQueue.enqueue_current (python_method: the one it replaces, for every other caller). */
static PyObject *
enqueue_current_for(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyType_Check(args[0]) || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "enqueue_current_for(WaitQueue, python_method)");
        return NULL;
    }
    Py_XSETREF(py_enqueue_current, Py_NewRef(args[1]));
    return PyDescr_NewMethod((PyTypeObject *)args[0], &wq_enqueue_current_def);
}

static int
mark(PyObject *strand, PyObject *state, PyObject *on, PyObject *waiter)
{
    if (PyObject_SetAttr(strand, str_state, state) < 0 ||
        PyObject_SetAttr(strand, str_parked_on, on) < 0 ||
        PyObject_SetAttr(strand, str_waiter, waiter) < 0)
        return -1;
    return 0;
}

/* parking.park itself and its park_checks (configure_python_park()): for park_any(), and
 * the check's ``green_free`` types. */
static PyObject *py_park = NULL, *park_checks = NULL, *str_green_free = NULL,
    *str_cancel_scopes = NULL;

/* Whether the waiter's object is of a type on which the check has nothing to look at for a
 * green strand's wait (ParkChecks.green_free, which the check fills in): 1, 0, -1 error. */
static int
needs_no_check(PyObject *waiter)
{
    if (park_checks == NULL)
        return 0;
    PyObject *free = PyObject_GetAttr(park_checks, str_green_free);
    if (free == NULL)
        return -1;
    int skip = 0;
    if (PyAnySet_Check(free) && PySet_GET_SIZE(free) > 0) {
        PyObject *on = descr_get(waiter_descr[W_ON], waiter);
        skip = on == NULL ? -1 : PySet_Contains(free, (PyObject *)Py_TYPE(on));
        Py_XDECREF(on);
    }
    Py_DECREF(free);
    return skip;
}

/* park(waiter, check, undo): parking.park for the untimed, unscoped wait of a green strand
 * whose waiter enqueue() made (park() chose it: no timeout, no cancel scope, no
 * instruments): check(waiter) unless None, mark the strand parked, switch to the hub until
 * resumed, mark it running; whether it was woken. An exception thrown in (its
 * cancellation) goes through parking._green_abandon(waiter, undo) and is raised; an
 * unusual end (not woken, or instruments installed meanwhile) through _wait_done. */
static PyObject *
park(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "park(waiter, check, undo)");
        return NULL;
    }
    if (park_not_configured())
        return NULL;
    PyObject *waiter = args[0], *check = args[1], *undo = args[2];
    PyObject *strand = NULL, *on = NULL, *fut = NULL, *out = NULL, *result = NULL;
    if (check != Py_None) {
        int skip = needs_no_check(waiter);
        if (skip < 0)
            return NULL;
        PyObject *r = skip ? Py_NewRef(Py_None) : PyObject_CallOneArg(check, waiter);
        if (r == NULL) /* (the check may raise: a deadlock) */
            return NULL;
        Py_DECREF(r);
    }
    if ((strand = descr_get(waiter_descr[W_STRAND], waiter)) == NULL ||
        (on = descr_get(waiter_descr[W_ON], waiter)) == NULL ||
        (fut = descr_get(waiter_descr[W_FUT], waiter)) == NULL)
        goto done;
    if (!Py_IS_TYPE(fut, &Resume_Type)) {
        PyErr_SetString(PyExc_TypeError, "park(): the waiter was not made by enqueue()");
        goto done;
    }
    PyObject *g = ((Resume *)fut)->greenlet;
    if (mark(strand, str_parked, on, waiter) < 0)
        goto done;
    if (PyObject_SetAttr(g, str_waiting, fut) < 0) {
        mark(strand, str_running, Py_None, Py_None);
        goto done;
    }
    out = gl_switch_parent(g); /* to the hub, until resumed */
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = out == NULL ? PyErr_GetRaisedException() : NULL;
#else
    PyObject *typ = NULL, *exc = NULL, *tb = NULL;
    if (out == NULL)
        PyErr_Fetch(&typ, &exc, &tb);
#endif
    int rc = PyObject_SetAttr(g, str_waiting, Py_None);
    rc |= mark(strand, str_running, Py_None, Py_None);
    if (out == NULL) { /* cancelled: leave the queue, give back a hand-over, re-raise */
        PyObject *r = rc < 0 ? NULL : PyObject_CallFunctionObjArgs(park_abandon, waiter, undo, NULL);
        PyObject *r2 = r == NULL ? NULL : PyObject_CallOneArg(park_done, waiter);
        if (r2 != NULL) {
#if PY_VERSION_HEX >= 0x030C0000
            PyErr_SetRaisedException(exc);
#else
            PyErr_Restore(typ, exc, tb);
#endif
        } else { /* (that failed: its error, with the cancellation as its context) */
#if PY_VERSION_HEX >= 0x030C0000
            Py_XDECREF(exc);
#else
            Py_XDECREF(typ);
            Py_XDECREF(exc);
            Py_XDECREF(tb);
#endif
        }
        Py_XDECREF(r);
        Py_XDECREF(r2);
        goto done;
    }
    Py_DECREF(out);
    if (rc < 0)
        goto done;
    PyObject *state = descr_get(waiter_descr[W_STATE], waiter);
    if (state == NULL)
        goto done;
    int woken = PyObject_RichCompareBool(state, int_woken, Py_EQ);
    Py_DECREF(state);
    if (woken < 0)
        goto done;
    PyObject *active = PyObject_GetAttr(park_hooks, str_active);
    int watched = active == NULL ? -1 : PyObject_IsTrue(active);
    Py_XDECREF(active);
    if (watched < 0)
        goto done;
    if (woken && !watched)
        result = Py_NewRef(Py_True);
    else
        result = PyObject_CallOneArg(park_done, waiter);
done:
    Py_XDECREF(strand);
    Py_XDECREF(on);
    Py_XDECREF(fut);
    return result;
}

/* park_any(waiter, timeout, undo): parking.park for every waiter, with no Python frame for
 * the wait park() takes (a green strand's, untimed, outside any cancel scope, no instrument
 * installed: as parking.park's own choice); every other wait goes on to parking.park. */
static PyObject *
park_any(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (py_park == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_python_park() was not called");
        return NULL;
    }
    if (nargs == 3 && kwnames == NULL && args[1] == Py_None && green_type != NULL &&
        waiter_type != NULL && Py_IS_TYPE(args[0], waiter_type)) {
        PyObject *fut = descr_get(waiter_descr[W_FUT], args[0]);
        if (fut == NULL)
            return NULL;
        int green = Py_IS_TYPE(fut, &Resume_Type);
        Py_DECREF(fut);
        if (green) {
            PyObject *strand = descr_get(waiter_descr[W_STRAND], args[0]);
            PyObject *scopes = strand ? PyObject_GetAttr(strand, str_cancel_scopes) : NULL;
            PyObject *active = scopes ? PyObject_GetAttr(park_hooks, str_active) : NULL;
            int scoped = active ? PyObject_IsTrue(scopes) : -1;
            int watched = scoped == 0 ? PyObject_IsTrue(active) : -1;
            Py_XDECREF(strand);
            Py_XDECREF(scopes);
            Py_XDECREF(active);
            if (watched < 0 && PyErr_Occurred())
                return NULL;
            if (scoped == 0 && watched == 0) {
                PyObject *check = PyObject_GetAttrString(park_checks, "untimed");
                if (check == NULL)
                    return NULL;
                PyObject *a[3] = {args[0], check, args[2]};
                PyObject *r = park(module, a, 3);
                Py_DECREF(check);
                return r;
            }
        }
    }
    return PyObject_Vectorcall(py_park, args, nargs, kwnames);
}

/* configure_python_park(park, checks): parking.park and parking.park_checks. */
static PyObject *
configure_python_park(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyCallable_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "configure_python_park(park, checks)");
        return NULL;
    }
    Py_XSETREF(park_checks, Py_NewRef(args[1]));
    Py_XSETREF(py_park, Py_NewRef(args[0]));
    Py_RETURN_NONE;
}

static PyObject *
configure_park(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"Waiter", "WaitQueue", "green_type", "QUEUED", "WOKEN",
                             "hooks",  "abandon",   "done",       NULL};
    PyObject *wt, *qt, *gt, *queued, *woken, *hooks, *abandon, *done;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!OOOOOO:configure_park", kwlist,
                                     &PyType_Type, &wt, &PyType_Type, &qt, &gt, &queued, &woken,
                                     &hooks, &abandon, &done))
        return NULL;
    PyObject *descr[W_COUNT], *dq = NULL, *count = NULL;
    for (int i = 0; i < W_COUNT; i++) {
        descr[i] = PyObject_GetAttrString(wt, waiter_slots[i]);
        if (descr[i] != NULL && (Py_TYPE(descr[i])->tp_descr_set == NULL ||
                                 Py_TYPE(descr[i])->tp_descr_get == NULL)) {
            PyErr_Format(PyExc_TypeError, "Waiter.%s is not a slot", waiter_slots[i]);
            Py_CLEAR(descr[i]);
        }
        if (descr[i] == NULL) {
            while (--i >= 0)
                Py_DECREF(descr[i]);
            return NULL;
        }
    }
    dq = PyObject_GetAttrString(qt, "_dq");
    count = dq == NULL ? NULL : PyObject_GetAttrString(qt, "_count");
    if (count == NULL || Py_TYPE(dq)->tp_descr_get == NULL ||
        Py_TYPE(count)->tp_descr_set == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "WaitQueue._dq and ._count must be slots");
        Py_XDECREF(dq);
        Py_XDECREF(count);
        for (int i = 0; i < W_COUNT; i++)
            Py_DECREF(descr[i]);
        return NULL;
    }
    for (int i = 0; i < W_COUNT; i++)
        Py_XSETREF(waiter_descr[i], descr[i]);
    Py_XSETREF(queue_dq, dq);
    Py_XSETREF(queue_count, count);
    Py_XSETREF(waiter_type, (PyTypeObject *)Py_NewRef(wt));
    Py_XSETREF(green_type, Py_NewRef(gt));
    Py_XSETREF(int_queued, Py_NewRef(queued));
    Py_XSETREF(int_woken, Py_NewRef(woken));
    Py_XSETREF(park_hooks, Py_NewRef(hooks));
    Py_XSETREF(park_abandon, Py_NewRef(abandon));
    Py_XSETREF(park_done, Py_NewRef(done));
    Py_RETURN_NONE;
}

/* -- module ---------------------------------------------------------------------------- */

static PyObject *
configure(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"greenlet", "getcurrent", "local", NULL};
    PyObject *g, *gc, *local;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO:configure", kwlist, &g, &gc, &local))
        return NULL;
    Py_XSETREF(greenlet_type, Py_NewRef(g));
    Py_XSETREF(getcurrent, Py_NewRef(gc));
    Py_XSETREF(strand_local, Py_NewRef(local));
    load_capi(g);
    Py_RETURN_NONE;
}

static PyObject *
uses_greenlet_capi(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(have_capi);
}

static PyMethodDef module_methods[] = {
    {"uses_greenlet_capi", uses_greenlet_capi, METH_NOARGS,
     "Whether switches go through greenlet's C API (else its Python API)."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "configure(greenlet, getcurrent, local): greenlet's type and getcurrent, and plait's "
     "thread-local strand slot."},
    {"configure_park", (PyCFunction)(void (*)(void))configure_park,
     METH_VARARGS | METH_KEYWORDS,
     "configure_park(Waiter, WaitQueue, green_type, QUEUED, WOKEN, hooks, abandon, done): "
     "what enqueue() and park() make, touch and end through."},
    {"enqueue", (PyCFunction)(void (*)(void))enqueue, METH_FASTCALL,
     "enqueue(queue, greenlet, on, data): a green strand's waiter, queued."},
    {"enqueue_current_for", (PyCFunction)(void (*)(void))enqueue_current_for, METH_FASTCALL,
     "enqueue_current_for(WaitQueue, python_method): a C WaitQueue.enqueue_current that "
     "queues a green strand's waiter itself and hands every other call to python_method."},
    {"park", (PyCFunction)(void (*)(void))park, METH_FASTCALL,
     "park(waiter, check, undo): the untimed, unscoped green wait; whether it was woken."},
    {"park_any", (PyCFunction)(void (*)(void))park_any, METH_FASTCALL | METH_KEYWORDS,
     "park_any(waiter, timeout, undo): parking.park, a green strand's plain wait in C."},
    {"configure_python_park", (PyCFunction)(void (*)(void))configure_python_park,
     METH_FASTCALL, "configure_python_park(park, checks): parking.park and its park_checks."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "plait._core._greenpark",
    .m_doc = "The switch step of green strands (Resume, Scheduler) in C.",
    .m_size = -1,
    .m_methods = module_methods,
};

#define INTERN(var, text)                                                                  \
    if ((var = PyUnicode_InternFromString(text)) == NULL)                                  \
        return NULL;

PyMODINIT_FUNC
PyInit__greenpark(void)
{
    INTERN(str_switch, "switch");
    INTERN(str_throw, "throw");
    INTERN(str_parent, "parent");
    INTERN(str_dead, "dead");
    INTERN(str_waiting, "waiting");
    INTERN(str_strand, "strand");
    INTERN(str_outcome, "outcome");
    INTERN(str_done, "done");
    INTERN(str_set_result, "set_result");
    INTERN(str_call_soon, "call_soon");
    INTERN(str_scheduler, "scheduler");
    INTERN(str_dict, "__dict__");
    INTERN(str_end, "end");
    INTERN(str_gr_context, "gr_context");
    INTERN(str_parked, "parked");
    INTERN(str_running, "running");
    INTERN(str_parked_on, "parked_on");
    INTERN(str_state, "state");
    INTERN(str_waiter, "waiter");
    INTERN(str_append, "append");
    INTERN(str_active, "active");
    INTERN(str_green_free, "green_free");
    INTERN(str_cancel_scopes, "cancel_scopes");
    if ((int_one = PyLong_FromLong(1)) == NULL || (empty_tuple = PyTuple_New(0)) == NULL)
        return NULL;
    if (PyType_Ready(&Resume_Type) < 0 || PyType_Ready(&Scheduler_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Resume", (PyObject *)&Resume_Type) < 0 ||
        PyModule_AddObjectRef(m, "Scheduler", (PyObject *)&Scheduler_Type) < 0 ||
        PyModule_AddIntConstant(m, "SEAM", 6) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
