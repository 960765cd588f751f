/* What every compiled decoder in marketpulse.native shares: the includes, the source stamp,
 * building an object from freshly made arguments, and creating the module.
 *
 * Each native/<name>.c includes this; marketpulse.native.source_digest covers the headers too,
 * so editing this file makes every module stale until `make env` rebuilds it.
 */
#ifndef MARKETPULSE_NATIVE_DECODER_H
#define MARKETPULSE_NATIVE_DECODER_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#ifndef SOURCE_SHA256
#define SOURCE_SHA256 ""
#endif

/* callable(*args) for arguments the caller owns: every one is released, and the call is made
 * only when none is NULL (a failed allocation, whose error is already set). */
static inline PyObject *
call_releasing(PyObject *callable, PyObject **args, Py_ssize_t n)
{
    PyObject *out = NULL;
    int complete = 1;
    for (Py_ssize_t i = 0; i < n; i++)
        complete &= args[i] != NULL;
    if (complete)
        out = PyObject_Vectorcall(callable, args, (size_t)n, NULL);
    for (Py_ssize_t i = 0; i < n; i++)
        Py_XDECREF(args[i]);
    return out;
}

/* The module, carrying SOURCE_SHA256 for marketpulse.native.load's staleness check. */
static inline PyObject *
stamped_module(struct PyModuleDef *def)
{
    PyObject *module = PyModule_Create(def);
    if (module != NULL && PyModule_AddStringConstant(module, "SOURCE_SHA256", SOURCE_SHA256) < 0)
        Py_CLEAR(module);
    return module;
}

#endif
