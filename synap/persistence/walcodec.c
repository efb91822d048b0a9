/* The WAL's record framing for a batch, in C: the compiled twin of walcodec.py.
 *
 * encode_entries(first_offset, records) -> bytes: for each record
 *   >I length, >I crc32(8 offset bytes + record), >Q offset, record
 * exactly as walcodec.py builds it (tests/unit/test_walcodec.py compares them), in one
 * allocation.  The CRC is zlib's (reflected polynomial 0xEDB88320), computed here with
 * slice-by-8 tables so that no zlib headers are needed to build. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static uint32_t crc_tables[8][256];

static void init_tables(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_tables[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = crc_tables[0][i];
        for (int t = 1; t < 8; t++) {
            c = crc_tables[0][c & 0xff] ^ (c >> 8);
            crc_tables[t][i] = c;
        }
    }
}

/* zlib.crc32(data, crc) */
static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n) {
    crc = ~crc;
#if PY_LITTLE_ENDIAN
    while (n >= 8) {
        uint32_t one, two;
        memcpy(&one, p, 4);
        memcpy(&two, p + 4, 4);
        one ^= crc;
        crc = crc_tables[7][one & 0xff] ^ crc_tables[6][(one >> 8) & 0xff] ^
              crc_tables[5][(one >> 16) & 0xff] ^ crc_tables[4][one >> 24] ^
              crc_tables[3][two & 0xff] ^ crc_tables[2][(two >> 8) & 0xff] ^
              crc_tables[1][(two >> 16) & 0xff] ^ crc_tables[0][two >> 24];
        p += 8;
        n -= 8;
    }
#endif
    while (n--)
        crc = crc_tables[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put_be64(unsigned char *p, uint64_t v) {
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static PyObject *encode_entries(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode_entries(first_offset, records)");
        return NULL;
    }
    unsigned long long first = PyLong_AsUnsignedLongLong(args[0]);
    if (first == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    PyObject *seq = PySequence_Fast(args[1], "records must be a sequence of bytes");
    if (seq == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyBytes_Check(items[i])) {
            PyErr_Format(PyExc_TypeError, "a record must be bytes, not %.100s",
                         Py_TYPE(items[i])->tp_name);
            Py_DECREF(seq);
            return NULL;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
        if ((unsigned long long)len > 0xFFFFFFFFull || total > PY_SSIZE_T_MAX - 16 - len) {
            PyErr_SetString(PyExc_OverflowError, "record too large for a WAL entry");
            Py_DECREF(seq);
            return NULL;
        }
        total += 16 + len;
    }
    if (count > 0 && (unsigned long long)(count - 1) > ~0ull - first) {
        PyErr_SetString(PyExc_OverflowError, "offset out of range");
        Py_DECREF(seq);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
    uint64_t offset = first;
    for (Py_ssize_t i = 0; i < count; i++, offset++) {
        const unsigned char *rec = (const unsigned char *)PyBytes_AS_STRING(items[i]);
        size_t len = (size_t)PyBytes_GET_SIZE(items[i]);
        put_be64(p + 8, offset);
        memcpy(p + 16, rec, len);
        uint32_t crc = crc32_update(0, p + 8, 8 + len);
        put_be32(p, (uint32_t)len);
        put_be32(p + 4, crc);
        p += 16 + len;
    }
    Py_DECREF(seq);
    return out;
}

static PyMethodDef methods[] = {
    {"encode_entries", (PyCFunction)(void (*)(void))encode_entries, METH_FASTCALL,
     "encode_entries(first_offset, records) -> bytes: the WAL bytes of consecutive records."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "walcodec",
    "The WAL's record framing for a batch (C twin of synap/persistence/walcodec.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit_walcodec(void) {
    init_tables();
    return PyModule_Create(&module);
}
