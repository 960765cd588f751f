/* Dhan main-feed messages that are exactly one full (162 B), quote (50 B) or ticker (16 B)
 * packet, decoded straight into the canonical Decoded([Tick]).
 *
 * The pure-Python decoder (marketpulse.feeds.dhan.wire._decode_message) is the reference: this
 * handles only what its single-packet fast path handles (an exact `bytes` message of one of the
 * three kinds, a memoised instrument, every rounded price well inside the float rounding
 * trick's range, an int LTT offset) and gives every other call to that decoder unchanged, with
 * the same arguments, so the two agree by construction on anything unusual (stacked packets,
 * side packets, cache misses, NaN/inf or huge prices, other buffers, odd arguments).
 * Every float is computed with the same IEEE double operations CPython uses for the Python
 * expressions (built with -ffp-contract=off), and tests check the two bit for bit.
 */
#include "decoder.h"

#include <math.h>


#define CODE_TICKER 2
#define CODE_QUOTE 4
#define CODE_FULL 8
#define FULL_LENGTH 162
#define QUOTE_LENGTH 50
#define TICKER_LENGTH 16
#define TICK_ARGS 29
#define SEGMENTS 256
/* wire._RINT: (y + RINT) - RINT is round-half-even of y whenever |y| < 2**51. */
#define RINT 6755399441055744.0
/* wire._RINT_LIMIT: a rounded price must have |r| < 2**50 (NaN fails the comparison). The
 * Python fast path checks hypot(r...) < 2**50 instead; where that is stricter its general walk
 * takes the packet and, every |y| being < 2**51, rounds it to the very same values. */
#define RINT_LIMIT 1125899906842624.0
/* An LTT offset this small keeps (ltt - offset) * 1000 exact in int64 (|ltt| < 2**31). */
#define OFFSET_LIMIT ((int64_t)1 << 40)

typedef struct {
    PyObject *fallback;   /* wire._decode_message(data, ts_recv, ltt_offset): the reference */
    PyObject *caches;     /* wire._INSTRUMENTS: 256 dicts, id -> (key, exchange, scale, deriv) */
    PyObject *decoded;    /* wire.Decoded */
    PyObject *tick;       /* model.Tick */
    PyObject *depth;      /* model.DepthLevel */
    PyObject *source;     /* "dhan" */
    PyObject *offset;     /* the default ltt_offset (wire.IST_OFFSET_SECONDS) */
    PyObject *full;       /* "full" */
    PyObject *quote;      /* "quote" */
    PyObject *ltp;        /* "ltp" */
    PyObject *kw_ts_recv; /* "ts_recv" */
    PyObject *kw_offset;  /* "ltt_offset" */
} State;

static State state;

static inline uint32_t
u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline unsigned int
u16(const unsigned char *p)
{
    return (unsigned int)p[0] | (unsigned int)p[1] << 8;
}

static inline int32_t
i32(const unsigned char *p)
{
    return (int32_t)u32(p);
}

/* A little-endian float32 widened to double, exactly as struct's "<f" does. */
static inline double
f32(const unsigned char *p)
{
    uint32_t bits = u32(p);
    float value;
    memcpy(&value, &bits, sizeof value);
    return (double)value;
}

/* `x * s + m - m` of the Python fast path: three IEEE operations in that order. */
static inline double
grid(double x, double s)
{
    double y = x * s;
    y = y + RINT;
    return y - RINT;
}

static inline int
in_range(double r)
{
    return r < RINT_LIMIT && r > -RINT_LIMIT;
}

static PyObject *
fall_back(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return PyObject_Vectorcall(state.fallback, args, (size_t)nargs, kwnames);
}

/* The memoised (key, exchange, scale, derivative) of a header, borrowed; NULL when absent or not
 * the shape wire._instrument stores (then the reference decides), NULL with an error set on a
 * failing lookup. */
static PyObject *
instrument(const unsigned char *buf, double *scale)
{
    PyObject *cache = PyTuple_GET_ITEM(state.caches, buf[3]);
    PyObject *ident = PyLong_FromUnsignedLong((unsigned long)u32(buf + 4));
    if (ident == NULL)
        return NULL;
    PyObject *entry = PyDict_GetItemWithError(cache, ident); /* borrowed */
    Py_DECREF(ident);
    if (entry == NULL || !PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 4)
        return NULL;
    PyObject *s = PyTuple_GET_ITEM(entry, 2), *derivative = PyTuple_GET_ITEM(entry, 3);
    if (!PyFloat_CheckExact(s) || (derivative != Py_True && derivative != Py_False))
        return NULL;
    *scale = PyFloat_AS_DOUBLE(s);
    return entry;
}

/* `(ltt - ltt_offset) * 1000 if ltt else None`; NULL (no error) when the offset is not an int
 * small enough to compute this exactly in int64, so that the reference does it. */
static PyObject *
last_trade(int32_t ltt, PyObject *offset)
{
    if (ltt == 0)
        Py_RETURN_NONE;
    if (!PyLong_CheckExact(offset))
        return NULL;
    int overflow = 0;
    long long off = PyLong_AsLongLongAndOverflow(offset, &overflow);
    if (overflow || off > OFFSET_LIMIT || off < -OFFSET_LIMIT) {
        if (off == -1 && PyErr_Occurred())
            PyErr_Clear();
        return NULL;
    }
    return PyLong_FromLongLong(((long long)ltt - off) * 1000);
}

/* Decoded([Tick(*a)]), releasing the arguments; NULL with an error on failure. */
static PyObject *
emit(PyObject **a, int count)
{
    PyObject *ticks = NULL, *out = NULL;
    PyObject *tick = call_releasing(state.tick, a, count);
    if (tick == NULL)
        return NULL;
    ticks = PyList_New(1);
    if (ticks == NULL) {
        Py_DECREF(tick);
        return NULL;
    }
    PyList_SET_ITEM(ticks, 0, tick);
    out = PyObject_Vectorcall(state.decoded, &ticks, 1, NULL);
    Py_DECREF(ticks);
    return out;
}

/* Five DepthLevels from the rounded prices and the raw level bytes (20 each, from `first`):
 * qty at +qty, orders at +orders. */
static PyObject *
levels(const double *prices, double s, const unsigned char *first, int qty, int orders)
{
    PyObject *list = PyList_New(5);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < 5; i++) {
        const unsigned char *p = first + 20 * i;
        PyObject *args[3] = {PyFloat_FromDouble(prices[i] / s),
                             PyLong_FromUnsignedLong((unsigned long)u32(p + qty)),
                             PyLong_FromLong((long)u16(p + orders))};
        PyObject *level = call_releasing(state.depth, args, 3);
        if (level == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, level);
    }
    return list;
}

static void
nones(PyObject **a, int from, int to)
{
    for (int i = from; i < to; i++)
        a[i] = Py_NewRef(Py_None);
}

/* a[0..4], a[25] and a[26] of every hot packet's Tick: source, key, exchange, mode, ltp,
 * ts_last_trade (`ltt`, whose reference this takes over) and ts_recv. */
static void
head(PyObject **a, PyObject *entry, PyObject *mode, double ltp, double s, PyObject *ltt,
     PyObject *ts_recv)
{
    a[0] = Py_NewRef(state.source);
    a[1] = Py_NewRef(PyTuple_GET_ITEM(entry, 0));
    a[2] = Py_NewRef(PyTuple_GET_ITEM(entry, 1));
    a[3] = Py_NewRef(mode);
    a[4] = PyFloat_FromDouble(ltp / s);
    a[25] = ltt;
    a[26] = Py_NewRef(ts_recv);
}

/* a[5..13], which quote and full share (their layouts agree up to byte 34): symbol (None), ltq,
 * atp, volume, total buy and sell qty, open, high, low. */
static void
trade(PyObject **a, const unsigned char *buf, double atp, double open, double high, double low,
      double s)
{
    a[5] = Py_NewRef(Py_None);
    a[6] = PyLong_FromLong((long)u16(buf + 12));
    a[7] = PyFloat_FromDouble(atp / s);
    a[8] = PyLong_FromUnsignedLong((unsigned long)u32(buf + 22));  /* volume */
    a[9] = PyLong_FromUnsignedLong((unsigned long)u32(buf + 30));  /* total buy qty */
    a[10] = PyLong_FromUnsignedLong((unsigned long)u32(buf + 26)); /* total sell qty */
    a[11] = PyFloat_FromDouble(open / s);
    a[12] = PyFloat_FromDouble(high / s);
    a[13] = PyFloat_FromDouble(low / s);
}

/* Full: `<BHBIfHifIIIIIIf4xff` + 5 x `IIHHff` (bid qty, ask qty, bid orders, ask orders, bid
 * price, ask price) from byte 62. Returns NULL without an error to fall back. */
static PyObject *
full(const unsigned char *buf, PyObject *ts_recv, PyObject *offset)
{
    double s;
    PyObject *entry = instrument(buf, &s);
    if (entry == NULL)
        return NULL;
    double ltp = grid(f32(buf + 8), s), atp = grid(f32(buf + 18), s);
    double open = grid(f32(buf + 46), s), high = grid(f32(buf + 54), s);
    double low = grid(f32(buf + 58), s);
    double bids[5], asks[5];
    int ok = in_range(ltp) & in_range(atp) & in_range(open) & in_range(high) & in_range(low);
    for (int i = 0; i < 5; i++) {
        bids[i] = grid(f32(buf + 62 + 20 * i + 12), s);
        asks[i] = grid(f32(buf + 62 + 20 * i + 16), s);
        ok &= in_range(bids[i]) & in_range(asks[i]);
    }
    if (!ok)
        return NULL;
    PyObject *ltt = last_trade(i32(buf + 14), offset);
    if (ltt == NULL)
        return NULL;
    PyObject *a[TICK_ARGS];
    head(a, entry, state.full, ltp, s, ltt, ts_recv);
    trade(a, buf, atp, open, high, low, s);
    nones(a, 14, 17); /* close, change, change_pct */
    if (PyTuple_GET_ITEM(entry, 3) == Py_True) { /* a derivative */
        a[17] = PyLong_FromUnsignedLong((unsigned long)u32(buf + 34)); /* oi */
        a[18] = PyLong_FromUnsignedLong((unsigned long)u32(buf + 38)); /* oi day high */
        a[19] = PyLong_FromUnsignedLong((unsigned long)u32(buf + 42)); /* oi day low */
    } else {
        nones(a, 17, 20);
    }
    nones(a, 20, 25); /* circuits, 52-week range, ts_exchange */
    a[27] = levels(bids, s, buf + 62, 0, 8);
    a[28] = levels(asks, s, buf + 62, 4, 10);
    return emit(a, TICK_ARGS);
}

/* Quote: `<BHBIfHifIIIffff` (the day close at 38 is not read). */
static PyObject *
quote(const unsigned char *buf, PyObject *ts_recv, PyObject *offset)
{
    double s;
    PyObject *entry = instrument(buf, &s);
    if (entry == NULL)
        return NULL;
    double ltp = grid(f32(buf + 8), s), atp = grid(f32(buf + 18), s);
    double open = grid(f32(buf + 34), s), high = grid(f32(buf + 42), s);
    double low = grid(f32(buf + 46), s);
    if (!(in_range(ltp) & in_range(atp) & in_range(open) & in_range(high) & in_range(low)))
        return NULL;
    PyObject *ltt = last_trade(i32(buf + 14), offset);
    if (ltt == NULL)
        return NULL;
    PyObject *a[27];
    head(a, entry, state.quote, ltp, s, ltt, ts_recv);
    trade(a, buf, atp, open, high, low, s);
    nones(a, 14, 25);
    return emit(a, 27);
}

/* Ticker: `<BHBIfi`. */
static PyObject *
ticker(const unsigned char *buf, PyObject *ts_recv, PyObject *offset)
{
    double s;
    PyObject *entry = instrument(buf, &s);
    if (entry == NULL)
        return NULL;
    double ltp = grid(f32(buf + 8), s);
    if (!in_range(ltp))
        return NULL;
    PyObject *ltt = last_trade(i32(buf + 12), offset);
    if (ltt == NULL)
        return NULL;
    PyObject *a[27];
    head(a, entry, state.ltp, ltp, s, ltt, ts_recv);
    nones(a, 5, 25);
    return emit(a, 27);
}

/* decode_message(data, ts_recv=None, ltt_offset=IST_OFFSET_SECONDS), the reference's
 * signature. Arguments the plain parse below does not recognise go to the reference as given,
 * which then raises exactly what it raises. */
static PyObject *
decode_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (state.fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "marketpulse.native._dhan is not configured");
        return NULL;
    }
    PyObject *slots[3] = {NULL, Py_None, state.offset};
    if (nargs < 1 || nargs > 3)
        return fall_back(args, nargs, kwnames);
    for (Py_ssize_t i = 0; i < nargs; i++)
        slots[i] = args[i];
    if (kwnames != NULL) {
        int given[3] = {1, nargs > 1, nargs > 2};
        PyObject *names[3] = {NULL, state.kw_ts_recv, state.kw_offset}; /* data: positional */
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(kwnames); k++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, k);
            int which = -1;
            for (int j = 1; j < 3 && which < 0; j++)
                if (name == names[j] ||
                    (PyUnicode_CheckExact(name) && PyUnicode_Compare(name, names[j]) == 0))
                    which = j;
            if (PyErr_Occurred())
                return NULL;
            if (which < 0 || given[which])
                return fall_back(args, nargs, kwnames);
            given[which] = 1;
            slots[which] = args[nargs + k];
        }
    }
    PyObject *data = slots[0], *ts_recv = slots[1], *offset = slots[2], *out = NULL;
    if (PyBytes_CheckExact(data)) {
        const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
        Py_ssize_t n = PyBytes_GET_SIZE(data);
        if (n == FULL_LENGTH && buf[0] == CODE_FULL && u16(buf + 1) == FULL_LENGTH)
            out = full(buf, ts_recv, offset);
        else if (n == QUOTE_LENGTH && buf[0] == CODE_QUOTE && u16(buf + 1) == QUOTE_LENGTH)
            out = quote(buf, ts_recv, offset);
        else if (n == TICKER_LENGTH && buf[0] == CODE_TICKER && u16(buf + 1) == TICKER_LENGTH)
            out = ticker(buf, ts_recv, offset);
    }
    if (out != NULL || PyErr_Occurred())
        return out;
    return fall_back(args, nargs, kwnames);
}

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *fallback, *caches, *decoded, *tick, *depth, *source, *offset;
    if (!PyArg_ParseTuple(args, "OO!OOOUO!:configure", &fallback, &PyTuple_Type, &caches,
                          &decoded, &tick, &depth, &source, &PyLong_Type, &offset))
        return NULL;
    if (PyTuple_GET_SIZE(caches) != SEGMENTS) {
        PyErr_SetString(PyExc_ValueError, "configure: the instrument caches must be 256 dicts");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < SEGMENTS; i++) {
        if (!PyDict_CheckExact(PyTuple_GET_ITEM(caches, i))) {
            PyErr_SetString(PyExc_TypeError, "configure: every instrument cache must be a dict");
            return NULL;
        }
    }
    PyObject *strings[5] = {
        PyUnicode_InternFromString("full"), PyUnicode_InternFromString("quote"),
        PyUnicode_InternFromString("ltp"), PyUnicode_InternFromString("ts_recv"),
        PyUnicode_InternFromString("ltt_offset"),
    };
    for (int i = 0; i < 5; i++) {
        if (strings[i] == NULL) {
            for (int j = 0; j < 5; j++)
                Py_XDECREF(strings[j]);
            return NULL;
        }
    }
    Py_XSETREF(state.fallback, Py_NewRef(fallback));
    Py_XSETREF(state.caches, Py_NewRef(caches));
    Py_XSETREF(state.decoded, Py_NewRef(decoded));
    Py_XSETREF(state.tick, Py_NewRef(tick));
    Py_XSETREF(state.depth, Py_NewRef(depth));
    Py_XSETREF(state.source, Py_NewRef(source));
    Py_XSETREF(state.offset, Py_NewRef(offset));
    Py_XSETREF(state.full, strings[0]);
    Py_XSETREF(state.quote, strings[1]);
    Py_XSETREF(state.ltp, strings[2]);
    Py_XSETREF(state.kw_ts_recv, strings[3]);
    Py_XSETREF(state.kw_offset, strings[4]);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(fallback, caches, decoded_type, tick_type, depth_type, source, ltt_offset): "
     "what decode_message() builds with."},
    {"decode_message", (PyCFunction)(void (*)(void))decode_message,
     METH_FASTCALL | METH_KEYWORDS,
     "decode_message(data, ts_recv=None, ltt_offset=...) -> Decoded: a main-feed message as "
     "the fallback decodes it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_dhan",
    "Dhan main-feed single-packet decoder in C; see marketpulse.native.", -1, methods,
};

PyMODINIT_FUNC
PyInit__dhan(void)
{
    return stamped_module(&module_def);
}
