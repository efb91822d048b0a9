/* A full sync's snapshot chunks, encoded in C: the compiled twin of snapcodec.py.
 *
 * Why C: the forked child that sends a full sync (synap/replication/fork_snapshot.py)
 * reads every value of the keyspace, and the values are to live in memory the child shares
 * with the master (MAP_SHARED). The child must never write to a value object, so no
 * Py_INCREF/Py_DECREF of one, not even for a moment, which Python code (and msgpack's
 * Packer, given lists holding the values) cannot promise. Here keys and values are only
 * BORROWED from PyDict_Next and read with PyBytes_AS_STRING/PyBytes_GET_SIZE; the
 * encoder's own references are to the three containers (private memory).
 *
 * ChunkEncoder(data, expires, json_keys, target_bytes).next_chunk() -> (payload, count) or
 * None: the entries [key, value, expires.get(key, 0)] (+ [1] for a json key) in data's
 * order, cut as master_session.batch_entries cuts them (len(key) + len(value) + 16 per
 * entry, a chunk ending with the entry that brings it to target_bytes or more), each
 * payload byte for byte what msgpack.Packer(use_bin_type=True).pack(entries) makes of it
 * (tests/unit/test_snapcodec.py compares them). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define ENTRY_OVERHEAD 16 /* master_session._ENTRY_OVERHEAD */
#define KIND_JSON 1       /* messages.SNAPSHOT_KIND_JSON */
#define HEADER_ROOM 5     /* the largest outer array header (array32) */
/* A buffer grown past this (a huge value) is freed after its chunk, not kept. */
#define KEEP_BYTES (4u << 20)

typedef struct {
    PyObject_HEAD
    PyObject *data;      /* dict (strong reference) */
    PyObject *expires;   /* dict (strong reference) */
    PyObject *json_keys; /* set (strong reference) */
    Py_ssize_t target;
    Py_ssize_t size; /* len(data) when the encoder was made */
    Py_ssize_t pos;  /* PyDict_Next's position */
    int done;
    unsigned char *buf; /* the chunk being built: HEADER_ROOM bytes, then the entries */
    size_t cap;
    size_t len;
} Encoder;

static int reserve(Encoder *self, size_t more) {
    if (self->cap - self->len >= more)
        return 0;
    if (more > (size_t)PY_SSIZE_T_MAX - self->len) {
        PyErr_NoMemory();
        return -1;
    }
    size_t need = self->len + more;
    size_t cap = self->cap ? self->cap : 4096;
    while (cap < need)
        cap = cap > (size_t)PY_SSIZE_T_MAX / 2 ? need : cap * 2;
    unsigned char *buf = PyMem_Realloc(self->buf, cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->buf = buf;
    self->cap = cap;
    return 0;
}

static void put_be16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
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

/* bin8/bin16/bin32 header and bytes (room for 5 + n reserved by the caller). */
static int put_bin(Encoder *self, const char *what, const char *data, Py_ssize_t n) {
    unsigned char *p = self->buf + self->len;
    if (n <= 0xff) {
        p[0] = 0xc4;
        p[1] = (unsigned char)n;
        p += 2;
    } else if (n <= 0xffff) {
        p[0] = 0xc5;
        put_be16(p + 1, (uint16_t)n);
        p += 3;
    } else if ((unsigned long long)n <= 0xffffffffull) {
        p[0] = 0xc6;
        put_be32(p + 1, (uint32_t)n);
        p += 5;
    } else {
        PyErr_Format(PyExc_ValueError, "a snapshot %s is too large for msgpack", what);
        return -1;
    }
    memcpy(p, data, (size_t)n);
    self->len = (size_t)(p + n - self->buf);
    return 0;
}

/* An int in msgpack's smallest form (room for 9 reserved by the caller). */
static void put_int(Encoder *self, long long v) {
    unsigned char *p = self->buf + self->len;
    size_t n;
    if (v >= 0) {
        unsigned long long u = (unsigned long long)v;
        if (u < 0x80) {
            p[0] = (unsigned char)u;
            n = 1;
        } else if (u <= 0xff) {
            p[0] = 0xcc;
            p[1] = (unsigned char)u;
            n = 2;
        } else if (u <= 0xffff) {
            p[0] = 0xcd;
            put_be16(p + 1, (uint16_t)u);
            n = 3;
        } else if (u <= 0xffffffffull) {
            p[0] = 0xce;
            put_be32(p + 1, (uint32_t)u);
            n = 5;
        } else {
            p[0] = 0xcf;
            put_be64(p + 1, (uint64_t)u);
            n = 9;
        }
    } else if (v >= -32) {
        p[0] = (unsigned char)(int8_t)v; /* negative fixint 0xe0-0xff */
        n = 1;
    } else if (v >= -128) {
        p[0] = 0xd0;
        p[1] = (unsigned char)(int8_t)v;
        n = 2;
    } else if (v >= -32768) {
        p[0] = 0xd1;
        put_be16(p + 1, (uint16_t)(int16_t)v);
        n = 3;
    } else if (v >= -2147483647LL - 1) {
        p[0] = 0xd2;
        put_be32(p + 1, (uint32_t)(int32_t)v);
        n = 5;
    } else {
        p[0] = 0xd3;
        put_be64(p + 1, (uint64_t)v);
        n = 9;
    }
    self->len += n;
}

static void put_uint64(Encoder *self, unsigned long long u) {
    unsigned char *p = self->buf + self->len;
    p[0] = 0xcf;
    put_be64(p + 1, (uint64_t)u);
    self->len += 9;
}

/* One entry: fixarray(3|4), bin key, bin value, expiry int[, 1]. */
static int put_entry(Encoder *self, PyObject *key, PyObject *value) {
    if (!PyBytes_CheckExact(key)) {
        PyErr_Format(PyExc_TypeError, "snapshot keys must be bytes, not %.100s",
                     Py_TYPE(key)->tp_name);
        return -1;
    }
    if (!PyBytes_CheckExact(value)) {
        PyErr_Format(PyExc_TypeError, "snapshot values must be bytes, not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    Py_ssize_t klen = PyBytes_GET_SIZE(key), vlen = PyBytes_GET_SIZE(value);
    long long expiry = 0;
    unsigned long long big = 0; /* an expiry above 2**63 - 1 (uint64) */
    int is_big = 0;
    if (PyDict_GET_SIZE(self->expires) > 0) {
        PyObject *at = PyDict_GetItemWithError(self->expires, key); /* borrowed */
        if (at == NULL && PyErr_Occurred())
            return -1;
        if (at != NULL) {
            if (!PyLong_CheckExact(at)) {
                PyErr_Format(PyExc_TypeError, "snapshot expiries must be int, not %.100s",
                             Py_TYPE(at)->tp_name);
                return -1;
            }
            int overflow = 0;
            expiry = PyLong_AsLongLongAndOverflow(at, &overflow);
            if (expiry == -1 && PyErr_Occurred())
                return -1;
            if (overflow > 0) {
                big = PyLong_AsUnsignedLongLong(at);
                if (big == (unsigned long long)-1 && PyErr_Occurred())
                    return -1;
                is_big = 1;
            } else if (overflow < 0) {
                PyErr_SetString(PyExc_OverflowError, "snapshot expiry out of msgpack's range");
                return -1;
            }
        }
    }
    int json = 0;
    if (PySet_GET_SIZE(self->json_keys) > 0) {
        json = PySet_Contains(self->json_keys, key);
        if (json < 0)
            return -1;
    }
    /* fixarray + (5 + key) + (5 + value) + 9 + 1 */
    if ((size_t)klen > (size_t)PY_SSIZE_T_MAX / 2 - 32 ||
        (size_t)vlen > (size_t)PY_SSIZE_T_MAX / 2 - 32) {
        PyErr_NoMemory();
        return -1;
    }
    if (reserve(self, (size_t)klen + (size_t)vlen + 21) < 0)
        return -1;
    self->buf[self->len++] = json ? 0x94 : 0x93;
    if (put_bin(self, "key", PyBytes_AS_STRING(key), klen) < 0 ||
        put_bin(self, "value", PyBytes_AS_STRING(value), vlen) < 0)
        return -1;
    if (is_big)
        put_uint64(self, big);
    else
        put_int(self, expiry);
    if (json)
        self->buf[self->len++] = KIND_JSON;
    return 0;
}

static PyObject *next_chunk(Encoder *self, PyObject *Py_UNUSED(ignored)) {
    if (self->done)
        Py_RETURN_NONE;
    if (PyDict_GET_SIZE(self->data) != self->size) {
        PyErr_SetString(PyExc_RuntimeError, "keyspace changed size during the snapshot");
        return NULL;
    }
    self->len = 0;
    if (reserve(self, HEADER_ROOM) < 0)
        return NULL;
    self->len = HEADER_ROOM;
    Py_ssize_t size = 0, count = 0;
    PyObject *key, *value; /* borrowed: never increfed */
    while (PyDict_Next(self->data, &self->pos, &key, &value)) {
        if (put_entry(self, key, value) < 0)
            return NULL;
        count++;
        size += PyBytes_GET_SIZE(key) + PyBytes_GET_SIZE(value) + ENTRY_OVERHEAD;
        /* (msgpack's arrays hold at most 2**32 - 1 items: cut there, never reached) */
        if (size >= self->target || (unsigned long long)count == 0xffffffffull)
            break;
    }
    if (count == 0) {
        self->done = 1;
        PyMem_Free(self->buf);
        self->buf = NULL;
        self->cap = self->len = 0;
        Py_RETURN_NONE;
    }
    size_t head;
    if (count < 16) {
        head = 1;
        self->buf[HEADER_ROOM - 1] = (unsigned char)(0x90 | count);
    } else if (count <= 0xffff) {
        head = 3;
        self->buf[HEADER_ROOM - 3] = 0xdc;
        put_be16(self->buf + HEADER_ROOM - 2, (uint16_t)count);
    } else {
        head = 5;
        self->buf[0] = 0xdd;
        put_be32(self->buf + 1, (uint32_t)count);
    }
    PyObject *payload = PyBytes_FromStringAndSize((const char *)self->buf + HEADER_ROOM - head,
                                                  (Py_ssize_t)(self->len - HEADER_ROOM + head));
    if (self->cap > KEEP_BYTES) {
        PyMem_Free(self->buf);
        self->buf = NULL;
        self->cap = 0;
    }
    self->len = 0;
    if (payload == NULL)
        return NULL;
    PyObject *n = PyLong_FromSsize_t(count);
    if (n == NULL) {
        Py_DECREF(payload);
        return NULL;
    }
    PyObject *result = PyTuple_New(2);
    if (result == NULL) {
        Py_DECREF(payload);
        Py_DECREF(n);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, payload); /* (the tuple takes both references) */
    PyTuple_SET_ITEM(result, 1, n);
    return result;
}

static PyObject *Encoder_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"data", "expires", "json_keys", "target_bytes", NULL};
    PyObject *data, *expires, *json_keys;
    Py_ssize_t target;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!On:ChunkEncoder", kwlist, &PyDict_Type,
                                     &data, &PyDict_Type, &expires, &json_keys, &target))
        return NULL;
    if (!PyAnySet_Check(json_keys)) {
        PyErr_Format(PyExc_TypeError, "json_keys must be a set, not %.100s",
                     Py_TYPE(json_keys)->tp_name);
        return NULL;
    }
    Encoder *self = (Encoder *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    Py_INCREF(data);
    Py_INCREF(expires);
    Py_INCREF(json_keys);
    self->data = data;
    self->expires = expires;
    self->json_keys = json_keys;
    self->target = target;
    self->size = PyDict_GET_SIZE(data);
    self->pos = 0;
    self->done = 0;
    self->buf = NULL;
    self->cap = self->len = 0;
    return (PyObject *)self;
}

static int Encoder_traverse(Encoder *self, visitproc visit, void *arg) {
    Py_VISIT(self->data);
    Py_VISIT(self->expires);
    Py_VISIT(self->json_keys);
    return 0;
}

static int Encoder_clear(Encoder *self) {
    Py_CLEAR(self->data);
    Py_CLEAR(self->expires);
    Py_CLEAR(self->json_keys);
    return 0;
}

static void Encoder_dealloc(Encoder *self) {
    PyObject_GC_UnTrack(self);
    Encoder_clear(self);
    PyMem_Free(self->buf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Encoder_methods[] = {
    {"next_chunk", (PyCFunction)next_chunk, METH_NOARGS,
     "next_chunk() -> (payload, count) | None: the next chunk's msgpack payload and its entry "
     "count; None when all entries are out."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "synap.replication.snapcodec.ChunkEncoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "ChunkEncoder(data, expires, json_keys, target_bytes): the snapshot chunks of "
              "data, one per next_chunk() call, never touching a value's reference count.",
    .tp_new = Encoder_new,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_traverse = (traverseproc)Encoder_traverse,
    .tp_clear = (inquiry)Encoder_clear,
    .tp_methods = Encoder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "snapcodec",
    "A full sync's snapshot chunks (C twin of synap/replication/snapcodec.py).", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_snapcodec(void) {
    if (PyType_Ready(&EncoderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&EncoderType);
    if (PyModule_AddObject(m, "ChunkEncoder", (PyObject *)&EncoderType) < 0) {
        Py_DECREF(&EncoderType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "BUILT", 1) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
