/* Kite Connect binary frames (kite.md §4) decoded straight into canonical Ticks.
 *
 * The pure-Python decoder (marketpulse.feeds.kite.wire._decode_frame_python) is the reference:
 * this handles only a frame that is wholly well formed (a bytes object whose packets are all of
 * the five known lengths, chain exactly to its end, have a defined segment and match the
 * declared count) and gives every other frame to that decoder unchanged, so the two agree by
 * construction on anything unusual. A well-formed frame decodes with no error and nothing
 * skipped, so what is built here is the reference's result field for field. Every float is
 * computed with the same IEEE operations CPython uses for the Python expressions (built with
 * -ffp-contract=off), and tests check the two bit for bit.
 */
#include "decoder.h"

#define SEGMENTS 256
#define INDEX_SEGMENT 9
#define DEPTH_LEVELS 5
#define TICK_ARGS 29      /* model.Tick's fields, source .. asks (wire._TICK_FIELDS) */
#define TS_RECV_ARG 26    /* ... of which ts_recv is the 27th */

enum { LEN_LTP = 8, LEN_INDEX_QUOTE = 28, LEN_INDEX_FULL = 32, LEN_QUOTE = 44, LEN_FULL = 184 };

typedef struct {
    PyObject *fallback;       /* wire._decode_frame_python: the reference decoder */
    PyObject *namespace;      /* wire's globals: the tables are checked to be the ones read */
    PyObject *divisor_name;   /* "_DIVISOR" */
    PyObject *exchange_name;  /* "_EXCHANGE" */
    PyObject *divisors;       /* wire._DIVISOR as configured */
    PyObject *exchanges;      /* wire._EXCHANGE as configured (holds exchange[]) */
    PyObject *tick;           /* model.Tick */
    PyObject *depth;          /* model.DepthLevel */
    PyObject *result;         /* wire.DecodeResult */
    PyObject *source;         /* "kite" */
    PyObject *mode_ltp, *mode_quote, *mode_full;
    PyObject *zero;           /* 0, the skipped count of a clean frame */
    double divisor[SEGMENTS];
    PyObject *exchange[SEGMENTS]; /* borrowed from `exchanges` */
    unsigned char defined[SEGMENTS]; /* the exchange is not wire.UNKNOWN_EXCHANGE */
} State;

static State state;

static inline unsigned int
u16(const unsigned char *p)
{
    return (unsigned int)p[0] << 8 | (unsigned int)p[1];
}

static inline uint32_t
u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline int32_t
i32(const unsigned char *p)
{
    return (int32_t)u32(p);
}

/* struct's ">i" / ">I": the ints CPython unpacks (all exactly representable as doubles). */
static inline PyObject *
int_at(const unsigned char *p)
{
    return PyLong_FromLong((long)i32(p));
}

static inline PyObject *
uint_at(const unsigned char *p)
{
    return PyLong_FromUnsignedLong((unsigned long)u32(p));
}

/* `raw / div` for an int raw and a float div: CPython converts the int exactly, then divides. */
static inline PyObject *
price_at(const unsigned char *p, double div)
{
    return PyFloat_FromDouble((double)i32(p) / div);
}

/* `seconds * 1000 if seconds else None`: a wire timestamp as epoch milliseconds. */
static inline PyObject *
millis_at(const unsigned char *p)
{
    uint32_t seconds = u32(p);
    if (seconds == 0)
        Py_RETURN_NONE;
    return PyLong_FromLongLong((long long)seconds * 1000);
}

/* str(token) */
static PyObject *
token_text(uint32_t token)
{
    char digits[10];
    int n = 0;
    do {
        digits[9 - n++] = (char)('0' + token % 10);
        token /= 10;
    } while (token != 0);
    PyObject *text = PyUnicode_New(n, 127);
    if (text != NULL)
        memcpy(PyUnicode_1BYTE_DATA(text), digits + 10 - n, (size_t)n);
    return text;
}

/* One side of the book from its first entry (12 bytes each: qty, price, orders, 2 pad bytes):
 * all-zero entries are padding, the rest are levels (wire's five-level fast path and _levels). */
static PyObject *
levels(const unsigned char *first, double div)
{
    Py_ssize_t count = 0;
    for (int i = 0; i < DEPTH_LEVELS; i++) {
        const unsigned char *p = first + 12 * i;
        count += u32(p) != 0 || u32(p + 4) != 0 || u16(p + 8) != 0;
    }
    PyObject *list = PyList_New(count);
    if (list == NULL)
        return NULL;
    Py_ssize_t n = 0;
    for (int i = 0; i < DEPTH_LEVELS; i++) {
        const unsigned char *p = first + 12 * i;
        uint32_t qty = u32(p);
        int32_t price = i32(p + 4);
        unsigned int orders = u16(p + 8);
        if (qty == 0 && price == 0 && orders == 0)
            continue;
        PyObject *args[3] = {PyFloat_FromDouble((double)price / div),
                             PyLong_FromUnsignedLong((unsigned long)qty),
                             PyLong_FromLong((long)orders)};
        PyObject *level = call_releasing(state.depth, args, 3);
        if (level == NULL) {
            Py_DECREF(list); /* its unset items are NULL, which list_dealloc skips */
            return NULL;
        }
        PyList_SET_ITEM(list, n++, level);
    }
    return list;
}

/* ltp (always at p + 4), open, high, low, close, change and change_pct into their Tick slots
 * (a[4], a[11..16], the last six holding None), as the reference computes them: change from
 * the exact wire integers, change_pct by model.price_change's formula, both None for close 0. */
static void
ohlc(PyObject **a, const unsigned char *p, int open, int high, int low, int close_at, double div)
{
    int32_t lp = i32(p + 4), cl = i32(p + close_at);
    double ltp = (double)lp / div, close = (double)cl / div;
    a[4] = PyFloat_FromDouble(ltp);
    Py_SETREF(a[11], price_at(p + open, div));
    Py_SETREF(a[12], price_at(p + high, div));
    Py_SETREF(a[13], price_at(p + low, div));
    Py_SETREF(a[14], PyFloat_FromDouble(close));
    if (cl != 0) {
        Py_SETREF(a[15], PyFloat_FromDouble((double)((int64_t)lp - (int64_t)cl) / div));
        Py_SETREF(a[16], PyFloat_FromDouble((ltp - close) * 100.0 / close));
    }
}

/* The Tick of the packet of `length` bytes at `p`, or NULL with an exception set. */
static PyObject *
packet_tick(const unsigned char *p, unsigned int length, PyObject *ts_recv, PyObject *index)
{
    uint32_t token = u32(p);
    unsigned int seg = token & 0xFF;
    double div = state.divisor[seg];
    PyObject *a[TICK_ARGS];
    Py_ssize_t nargs = TICK_ARGS;
    PyObject *exchange = state.exchange[seg];

    for (int i = 0; i < TICK_ARGS; i++)
        a[i] = NULL;
    if (seg == INDEX_SEGMENT && index != NULL) { /* index_exchanges.get(token, exchange) */
        PyObject *key = PyLong_FromUnsignedLong((unsigned long)token);
        if (key == NULL)
            return NULL;
        PyObject *found = PyDict_GetItemWithError(index, key); /* borrowed */
        Py_DECREF(key);
        if (found == NULL && PyErr_Occurred())
            return NULL;
        if (found != NULL)
            exchange = found;
    }
    a[0] = Py_NewRef(state.source);
    a[1] = token_text(token);
    a[2] = Py_NewRef(exchange);
    for (int i = 5; i < TS_RECV_ARG; i++)
        a[i] = Py_NewRef(Py_None);
    a[TS_RECV_ARG] = Py_NewRef(ts_recv);

    switch (length) {
    case LEN_LTP:
        a[3] = Py_NewRef(state.mode_ltp);
        a[4] = price_at(p + 4, div);
        nargs = TS_RECV_ARG + 1;
        break;
    case LEN_INDEX_QUOTE:
    case LEN_INDEX_FULL: /* token, ltp, high, low, open, close, change[, exchange time] */
        a[3] = Py_NewRef(length == LEN_INDEX_FULL ? state.mode_full : state.mode_quote);
        ohlc(a, p, 16, 8, 12, 20, div);
        if (length == LEN_INDEX_FULL)
            Py_SETREF(a[24], millis_at(p + 28));
        nargs = TS_RECV_ARG + 1;
        break;
    default: /* quote and full: token, ltp, ltq, atp, volume, buy qty, sell qty, o, h, l, c */
        a[3] = Py_NewRef(length == LEN_FULL ? state.mode_full : state.mode_quote);
        Py_SETREF(a[6], uint_at(p + 8));
        Py_SETREF(a[7], price_at(p + 12, div));
        Py_SETREF(a[8], uint_at(p + 16));
        Py_SETREF(a[9], uint_at(p + 20));
        Py_SETREF(a[10], uint_at(p + 24));
        ohlc(a, p, 28, 32, 36, 40, div);
        if (length == LEN_FULL) { /* + last trade time, oi, oi high, oi low, exchange time */
            Py_SETREF(a[17], uint_at(p + 48));
            Py_SETREF(a[18], uint_at(p + 52));
            Py_SETREF(a[19], uint_at(p + 56));
            Py_SETREF(a[24], millis_at(p + 60));
            Py_SETREF(a[25], millis_at(p + 44));
            a[27] = levels(p + 64, div);
            a[28] = levels(p + 124, div);
        } else {
            nargs = TS_RECV_ARG + 1;
        }
        break;
    }

    return call_releasing(state.tick, a, nargs);
}

/* The number of packets when the whole frame is well formed as described above, else -1. */
static Py_ssize_t
well_formed(const unsigned char *buf, Py_ssize_t end)
{
    Py_ssize_t pos = 2, count = 0;
    while (pos < end) {
        if (end - pos < 2)
            return -1;
        unsigned int length = u16(buf + pos);
        if (length != LEN_FULL && length != LEN_QUOTE && length != LEN_LTP &&
            length != LEN_INDEX_QUOTE && length != LEN_INDEX_FULL)
            return -1;
        if (end - pos - 2 < (Py_ssize_t)length || !state.defined[buf[pos + 5]])
            return -1;
        count++;
        pos += 2 + length;
    }
    return count == (Py_ssize_t)u16(buf) ? count : -1;
}

static PyObject *
fall_back(PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return PyObject_Vectorcall(state.fallback, args, nargsf, kwnames);
}

/* The configured tables are still the module's (a test may swap one for the reference). */
static int
tables_current(void)
{
    PyObject *divisors = PyDict_GetItemWithError(state.namespace, state.divisor_name);
    PyObject *exchanges = PyDict_GetItemWithError(state.namespace, state.exchange_name);
    if (PyErr_Occurred())
        PyErr_Clear();
    return divisors == state.divisors && exchanges == state.exchanges;
}

static PyObject *
decode_frame(PyObject *module, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (state.fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "marketpulse.native._kite is not configured");
        return NULL;
    }
    /* Keywords, a wrong call, a non-bytes message: all the reference's. */
    if (kwnames != NULL || nargs < 2 || nargs > 3 || !PyBytes_CheckExact(args[0]))
        return fall_back(args, nargsf, kwnames);
    PyObject *index = nargs == 3 ? args[2] : Py_None;
    if (index == Py_None || (PyDict_CheckExact(index) && PyDict_GET_SIZE(index) == 0))
        index = NULL; /* `if seg == 9 and index_exchanges` is false */
    else if (!PyDict_CheckExact(index))
        return fall_back(args, nargsf, kwnames); /* a Mapping whose get() may be anything */
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t end = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t count = end < 2 ? -1 : well_formed(buf, end);
    if (count < 0 || !tables_current())
        return fall_back(args, nargsf, kwnames);

    PyObject *ticks = PyList_New(count), *errors = NULL, *result = NULL;
    if (ticks == NULL)
        goto failed;
    Py_ssize_t pos = 2;
    for (Py_ssize_t i = 0; i < count; i++) {
        unsigned int length = u16(buf + pos);
        PyObject *tick = packet_tick(buf + pos + 2, length, args[1], index);
        if (tick == NULL)
            goto failed;
        PyList_SET_ITEM(ticks, i, tick);
        pos += 2 + length;
    }
    errors = PyList_New(0);
    if (errors != NULL) {
        PyObject *fields[3] = {ticks, state.zero, errors};
        result = PyObject_Vectorcall(state.result, fields, 3, NULL);
    }
failed:
    Py_XDECREF(ticks); /* unset items are NULL, which list_dealloc skips */
    Py_XDECREF(errors);
    if (result != NULL)
        return result;
    /* The reference catches Exception, which a clean frame raises only when memory or a dict
     * key's __eq__ fails: let it decide what the frame yields then. */
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        return fall_back(args, nargsf, kwnames);
    }
    return NULL;
}

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *fallback, *namespace, *tick, *depth, *result, *source, *ltp, *quote, *full;
    PyObject *unknown;
    if (!PyArg_ParseTuple(args, "OO!OOOUUUUU:configure", &fallback, &PyDict_Type, &namespace,
                          &tick, &depth, &result, &source, &ltp, &quote, &full, &unknown))
        return NULL;
    PyObject *divisors = PyDict_GetItemString(namespace, "_DIVISOR");  /* borrowed */
    PyObject *exchanges = PyDict_GetItemString(namespace, "_EXCHANGE"); /* borrowed */
    if (divisors == NULL || exchanges == NULL || !PyTuple_CheckExact(divisors) ||
        !PyTuple_CheckExact(exchanges) || PyTuple_GET_SIZE(divisors) != SEGMENTS ||
        PyTuple_GET_SIZE(exchanges) != SEGMENTS) {
        PyErr_SetString(PyExc_ValueError,
                        "configure: the namespace needs _DIVISOR and _EXCHANGE, 256-tuples");
        return NULL;
    }
    double divisor[SEGMENTS];
    for (int seg = 0; seg < SEGMENTS; seg++) {
        PyObject *div = PyTuple_GET_ITEM(divisors, seg);
        if (!PyFloat_CheckExact(div) || !(PyFloat_AS_DOUBLE(div) > 0.0)) {
            PyErr_SetString(PyExc_ValueError, "configure: every divisor must be a float > 0");
            return NULL;
        }
        divisor[seg] = PyFloat_AS_DOUBLE(div);
    }
    PyObject *divisor_name = PyUnicode_InternFromString("_DIVISOR");
    PyObject *exchange_name = PyUnicode_InternFromString("_EXCHANGE");
    PyObject *zero = PyLong_FromLong(0);
    if (divisor_name == NULL || exchange_name == NULL || zero == NULL) {
        Py_XDECREF(divisor_name);
        Py_XDECREF(exchange_name);
        Py_XDECREF(zero);
        return NULL;
    }
    Py_XSETREF(state.fallback, Py_NewRef(fallback));
    Py_XSETREF(state.namespace, Py_NewRef(namespace));
    Py_XSETREF(state.divisor_name, divisor_name);
    Py_XSETREF(state.exchange_name, exchange_name);
    Py_XSETREF(state.zero, zero);
    Py_XSETREF(state.tick, Py_NewRef(tick));
    Py_XSETREF(state.depth, Py_NewRef(depth));
    Py_XSETREF(state.result, Py_NewRef(result));
    Py_XSETREF(state.source, Py_NewRef(source));
    Py_XSETREF(state.mode_ltp, Py_NewRef(ltp));
    Py_XSETREF(state.mode_quote, Py_NewRef(quote));
    Py_XSETREF(state.mode_full, Py_NewRef(full));
    Py_XSETREF(state.divisors, Py_NewRef(divisors));
    /* exchange[] borrows from the new tuple: take it before the old one can be released. */
    PyObject *old_exchanges = state.exchanges;
    state.exchanges = Py_NewRef(exchanges);
    for (int seg = 0; seg < SEGMENTS; seg++) {
        state.divisor[seg] = divisor[seg];
        state.exchange[seg] = PyTuple_GET_ITEM(exchanges, seg);
        state.defined[seg] = state.exchange[seg] != unknown;
    }
    Py_XDECREF(old_exchanges);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(fallback, namespace, tick_type, depth_type, result_type, source, ltp_mode, "
     "quote_mode, full_mode, unknown_exchange): what decode_frame() builds with."},
    {"decode_frame", (PyCFunction)(void (*)(void))decode_frame, METH_FASTCALL | METH_KEYWORDS,
     "decode_frame(data, ts_recv, index_exchanges=None) -> DecodeResult, as the fallback "
     "decodes it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_kite",
    "Kite Connect binary frame decoder in C; see marketpulse.native.", -1, methods,
};

PyMODINIT_FUNC
PyInit__kite(void)
{
    return stamped_module(&module_def);
}
