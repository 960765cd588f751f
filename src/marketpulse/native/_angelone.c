/* Angel One SNAP_QUOTE (379-byte packet, spec §4.1/§4.5) decoded straight into the canonical Tick.
 *
 * The pure-Python decoder (marketpulse.feeds.angelone.wire._decode_snap) is the reference: this
 * handles only the layout every capture and our emulator send (a memoised instrument, five
 * non-empty bids with flag != 0 then five non-empty asks with flag 0) and gives every other
 * packet to that decoder unchanged, so the two agree by construction on anything unusual.
 * Every float is computed with the same IEEE operations CPython uses for the Python
 * expressions (built with -ffp-contract=off), and tests check the two bit for bit.
 */
#include "decoder.h"

#include <math.h>


#define SNAP_LENGTH 379
#define TICK_ARGS 29
#define EXACT_INT ((int64_t)1 << 53) /* |x| <= 2**53: a double holds it exactly */

typedef struct {
    PyObject *fallback;   /* wire._decode_snap(data, ts_recv): the reference decoder */
    PyObject *memo;       /* wire._INSTRUMENTS: 26 raw bytes -> (token, exchange, divisor) */
    PyObject *tick;       /* model.Tick */
    PyObject *depth;      /* model.DepthLevel */
    PyObject *source;     /* "angelone" */
    PyObject *mode;       /* "full" */
} State;

static State state;

static inline int64_t
i64(const unsigned char *p)
{
    uint64_t v = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
                 (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
                 (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
    return (int64_t)v;
}

static inline unsigned int
u16(const unsigned char *p)
{
    return (unsigned int)p[0] | (unsigned int)p[1] << 8;
}

static inline double
f64(const unsigned char *p)
{
    uint64_t v = (uint64_t)i64(p);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

/* int / int as CPython computes it: correctly rounded, so for operands a double holds exactly
 * it is one IEEE division; anything larger is left to CPython itself. */
static PyObject *
divide(int64_t raw, long div)
{
    if (raw <= EXACT_INT && raw >= -EXACT_INT)
        return PyFloat_FromDouble((double)raw / (double)div);
    PyObject *a = PyLong_FromLongLong(raw), *b = PyLong_FromLong(div), *q = NULL;
    if (a != NULL && b != NULL)
        q = PyNumber_TrueDivide(a, b);
    Py_XDECREF(a);
    Py_XDECREF(b);
    return q;
}

/* A float64 quantity total as int (math.trunc), None when the wire holds NaN/inf. */
static PyObject *
finite_int(double value)
{
    if (isfinite(value))
        return PyLong_FromDouble(value);
    Py_RETURN_NONE;
}

static PyObject *
positive_or_none(int64_t value)
{
    if (value > 0)
        return PyLong_FromLongLong(value);
    Py_RETURN_NONE;
}

/* Five levels starting at `first` (20 bytes each: flag, qty, price, orders) as a list. */
static PyObject *
levels(const unsigned char *first, long div)
{
    PyObject *list = PyList_New(5);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < 5; i++) {
        const unsigned char *p = first + 20 * i;
        PyObject *args[3] = {divide(i64(p + 10), div), PyLong_FromLongLong(i64(p + 2)),
                             PyLong_FromLong((long)u16(p + 18))};
        PyObject *level = call_releasing(state.depth, args, 3);
        if (level == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, level);
    }
    return list;
}

/* The layout this module handles: bids with flag != 0, asks with flag 0, every qty non-zero. */
static int
common_layout(const unsigned char *buf)
{
    for (int i = 0; i < 10; i++) {
        const unsigned char *p = buf + 147 + 20 * i;
        int is_bid = u16(p) != 0;
        if (is_bid != (i < 5) || i64(p + 2) == 0)
            return 0;
    }
    return 1;
}

static PyObject *
fall_back(PyObject *data, PyObject *ts_recv)
{
    PyObject *args[2] = {data, ts_recv};
    return PyObject_Vectorcall(state.fallback, args, 2, NULL);
}

static PyObject *
snap(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "snap(data, ts_recv) takes two arguments");
        return NULL;
    }
    PyObject *data = args[0], *ts_recv = args[1];
    if (state.fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "marketpulse.native._angelone is not configured");
        return NULL;
    }
    if (!PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) != SNAP_LENGTH)
        return fall_back(data, ts_recv);
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
    if (!common_layout(buf))
        return fall_back(data, ts_recv);

    PyObject *key = PyBytes_FromStringAndSize((const char *)buf + 1, 26);
    if (key == NULL)
        return NULL;
    PyObject *instrument = PyDict_GetItemWithError(state.memo, key); /* borrowed */
    Py_DECREF(key);
    if (instrument == NULL) {
        if (PyErr_Occurred())
            return NULL;
        return fall_back(data, ts_recv); /* a memo miss: the reference resolves and stores it */
    }
    if (!PyTuple_CheckExact(instrument) || PyTuple_GET_SIZE(instrument) != 3)
        return fall_back(data, ts_recv);
    long div = PyLong_AsLong(PyTuple_GET_ITEM(instrument, 2));
    if (div <= 0) {
        if (PyErr_Occurred())
            PyErr_Clear();
        return fall_back(data, ts_recv);
    }
    int64_t last = i64(buf + 123);
    if (last > INT64_MAX / 1000)
        return fall_back(data, ts_recv);

    double ltp = (double)0, close = (double)0;
    PyObject *a[TICK_ARGS] = {NULL};
    a[0] = Py_NewRef(state.source);
    a[1] = Py_NewRef(PyTuple_GET_ITEM(instrument, 0));
    a[2] = Py_NewRef(PyTuple_GET_ITEM(instrument, 1));
    a[3] = Py_NewRef(state.mode);
    a[4] = divide(i64(buf + 43), div);
    a[5] = Py_NewRef(Py_None);
    a[6] = PyLong_FromLongLong(i64(buf + 51));
    a[7] = divide(i64(buf + 59), div);
    a[8] = PyLong_FromLongLong(i64(buf + 67));
    a[9] = finite_int(f64(buf + 75));
    a[10] = finite_int(f64(buf + 83));
    a[11] = divide(i64(buf + 91), div);
    a[12] = divide(i64(buf + 99), div);
    a[13] = divide(i64(buf + 107), div);
    a[14] = divide(i64(buf + 115), div);
    if (a[4] != NULL && a[14] != NULL) {
        ltp = PyFloat_AS_DOUBLE(a[4]);
        close = PyFloat_AS_DOUBLE(a[14]);
    }
    if (close != 0.0) { /* model.price_change, the same expressions */
        double change = ltp - close;
        a[15] = PyFloat_FromDouble(change);
        a[16] = PyFloat_FromDouble(change * 100.0 / close);
    } else {
        a[15] = Py_NewRef(Py_None);
        a[16] = Py_NewRef(Py_None);
    }
    a[17] = PyLong_FromLongLong(i64(buf + 131));
    a[18] = Py_NewRef(Py_None);
    a[19] = Py_NewRef(Py_None);
    a[20] = divide(i64(buf + 347), div);
    a[21] = divide(i64(buf + 355), div);
    a[22] = divide(i64(buf + 363), div);
    a[23] = divide(i64(buf + 371), div);
    a[24] = positive_or_none(i64(buf + 35));
    a[25] = positive_or_none(last > 0 ? last * 1000 : 0); /* no overflow: checked above */
    a[26] = Py_NewRef(ts_recv);
    a[27] = levels(buf + 147, div);
    a[28] = levels(buf + 247, div);

    return call_releasing(state.tick, a, TICK_ARGS);
}

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *fallback, *memo, *tick, *depth, *source, *mode;
    if (!PyArg_ParseTuple(args, "OO!OOUU:configure", &fallback, &PyDict_Type, &memo, &tick,
                          &depth, &source, &mode))
        return NULL;
    Py_XSETREF(state.fallback, Py_NewRef(fallback));
    Py_XSETREF(state.memo, Py_NewRef(memo));
    Py_XSETREF(state.tick, Py_NewRef(tick));
    Py_XSETREF(state.depth, Py_NewRef(depth));
    Py_XSETREF(state.source, Py_NewRef(source));
    Py_XSETREF(state.mode, Py_NewRef(mode));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(fallback, memo, tick_type, depth_type, source, mode): what snap() builds with."},
    {"snap", (PyCFunction)(void (*)(void))snap, METH_FASTCALL,
     "snap(data, ts_recv) -> Tick | SkipReason: a SNAP_QUOTE packet as the fallback decodes it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_angelone",
    "Angel One SNAP_QUOTE decoder in C; see marketpulse.native.", -1, methods,
};

PyMODINIT_FUNC
PyInit__angelone(void)
{
    return stamped_module(&module_def);
}
