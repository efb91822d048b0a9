/* Prefetch the dictionary slots of a batch of keys: the C twin of dictprefetch.py.
 *
 * prefetch(data, keys) -> None.  For the first MAX_KEYS exact-bytes keys of the list
 * ``keys`` it issues, in three passes over the batch, the loads that a lookup of each
 * key in the dict ``data`` makes one after the other: (1) the hash index slot of the
 * key's first probe, (2) the entry that slot points to, (3) the stored key object (the
 * lookup compares it) and the stored value (a SET frees it).  Each pass reads only what
 * the previous pass prefetched, so the misses of a whole batch overlap instead of
 * following each other.  Only loads and prefetch instructions: no reference count, no
 * Python code, and no write but the hash that a bytes key caches in itself (as the
 * lookup that follows would).  A prefetch of a stale address cannot fault, and every
 * read is in bounds of the table (an index is masked, an entry index is one the table
 * holds).
 *
 * The layout of a dictionary's keys is CPython's internal one (pycore_dict.h), read with
 * Py_BUILD_CORE; it is that of CPython 3.11 only, so on any other version prefetch()
 * returns at once and BUILT is 0.  Dicts that are not "general" (str-only keys, split
 * tables) are left alone.  first_probe_hits() does what prefetch() does and counts the
 * keys whose first probe held an entry of their hash: the tests' check that the layout
 * is read right.  Tests: tests/unit/test_dictprefetch.py. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
#define SYNAP_KNOWN_LAYOUT 1
#define Py_BUILD_CORE 1
#include "internal/pycore_dict.h"
#undef Py_BUILD_CORE
#else
#define SYNAP_KNOWN_LAYOUT 0
#endif

#define MAX_KEYS 256

#if SYNAP_KNOWN_LAYOUT
static inline Py_ssize_t slot_index(const PyDictKeysObject *keys, size_t slot) {
    switch (keys->dk_log2_index_bytes - keys->dk_log2_size) {
    case 0: return ((const int8_t *)keys->dk_indices)[slot];
    case 1: return ((const int16_t *)keys->dk_indices)[slot];
    case 2: return ((const int32_t *)keys->dk_indices)[slot];
    default: return ((const int64_t *)keys->dk_indices)[slot];
    }
}

/* Prefetch the slots of the batch; returns how many keys' first probe holds an entry of
 * their hash (their slot was found: the tests' check that the layout is read right). */
static Py_ssize_t prefetch_batch(PyDictObject *dict, PyObject *list) {
    PyDictKeysObject *keys = dict->ma_keys;
    if (dict->ma_values != NULL || keys->dk_kind != DICT_KEYS_GENERAL)
        return 0;
    Py_ssize_t n = PyList_GET_SIZE(list);
    if (n > MAX_KEYS)
        n = MAX_KEYS;
    size_t mask = ((size_t)1 << keys->dk_log2_size) - 1;
    int width = keys->dk_log2_index_bytes - keys->dk_log2_size; /* log2 of bytes per slot */
    Py_ssize_t used = keys->dk_nentries;
    PyDictKeyEntry *entries = DK_ENTRIES(keys);
    Py_hash_t hashes[MAX_KEYS];
    PyDictKeyEntry *found[MAX_KEYS];
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PyList_GET_ITEM(list, i);
        found[i] = NULL;
        if (!PyBytes_CheckExact(key)) {
            hashes[i] = -1;
            continue;
        }
        hashes[i] = PyObject_Hash(key); /* bytes: cached, or computed; cannot fail */
        __builtin_prefetch(keys->dk_indices + (((size_t)hashes[i] & mask) << width));
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (hashes[i] == -1)
            continue;
        Py_ssize_t ix = slot_index(keys, (size_t)hashes[i] & mask);
        if (ix >= 0 && ix < used) {
            found[i] = &entries[ix];
            __builtin_prefetch(found[i]);
        }
    }
    Py_ssize_t hits = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyDictKeyEntry *entry = found[i];
        if (entry != NULL && entry->me_hash == hashes[i]) {
            __builtin_prefetch(entry->me_key);
            __builtin_prefetch(entry->me_value);
            hits++;
        }
    }
    return hits;
}
#endif

static int check_args(PyObject *const *args, Py_ssize_t nargs, const char *name) {
    if (nargs != 2 || !PyDict_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_Format(PyExc_TypeError, "%s(data: dict, keys: list)", name);
        return -1;
    }
    return 0;
}

static PyObject *prefetch(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (check_args(args, nargs, "prefetch") < 0)
        return NULL;
#if SYNAP_KNOWN_LAYOUT
    (void)prefetch_batch((PyDictObject *)args[0], args[1]);
#endif
    Py_RETURN_NONE;
}

/* first_probe_hits(data, keys) -> int: prefetch(), returning how many of the keys found
 * an entry of their hash at their first probe (0 where the layout is not known). */
static PyObject *first_probe_hits(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (check_args(args, nargs, "first_probe_hits") < 0)
        return NULL;
    Py_ssize_t hits = 0;
#if SYNAP_KNOWN_LAYOUT
    hits = prefetch_batch((PyDictObject *)args[0], args[1]);
#endif
    return PyLong_FromSsize_t(hits);
}

static PyMethodDef methods[] = {
    {"prefetch", (PyCFunction)(void (*)(void))prefetch, METH_FASTCALL,
     "prefetch(data, keys): start loading the slots of data that looking up keys reads."},
    {"first_probe_hits", (PyCFunction)(void (*)(void))first_probe_hits, METH_FASTCALL,
     "first_probe_hits(data, keys) -> int: prefetch(), counting the keys whose first probe "
     "holds an entry of their hash (a test's check of the layout)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dictprefetch",
    "Prefetch the dictionary slots of a batch of keys (C twin of dictprefetch.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit_dictprefetch(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "BUILT", SYNAP_KNOWN_LAYOUT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
