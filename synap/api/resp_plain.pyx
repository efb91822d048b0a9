# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The RESP per-command loop for reads of plain GETs and SETs, in C (Cython).

:func:`run` parses a read from a request boundary as long as it holds whole requests
written the way clients write them (``*2\\r\\n$3\\r\\nGET\\r\\n$<n>\\r\\n<key>\\r\\n`` and
``*3\\r\\n$3\\r\\nSET\\r\\n...``, names in upper or lower case, lengths without sign or
leading zeros), runs each through the command layer's :meth:`Commands.get_fast` /
:meth:`Commands.set_fast` (the same calls ``RespConnection._run_fast`` makes; a read's
first SET asks :meth:`Commands.set_fast_first`, ``fast_writes()`` and ``set_fast()`` in
one call) and writes their replies into one buffer.  It parses up to 32 requests before
it runs them, so that the keyspace slots of their keys are prefetched together
(:meth:`Commands.prefetch`).  It stops, before the request, at the first byte it does
not take: another command, other arguments, a write the fast path refuses, bytes that
are not in that exact form, or the end of the read inside a request.  The caller hands
the rest of the read to the general path (hiredis, ``RequestReader``), which starts
there at a request boundary, so every request it does not take is parsed and answered
exactly as before.  No hiredis list, no per-argument check, no reply object per command.

Optional: built at ``make install`` when Cython and a C compiler exist (setup.py); without
it, or with ``SYNAP_PURE_PYTHON=1``, the connection uses the Python path alone.
``tests/unit/test_resp_fast_path.py`` checks both against the general path.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.string cimport memcpy
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec


cdef struct Out:
    char* buf
    Py_ssize_t size
    Py_ssize_t cap


cdef int _grow(Out* out, Py_ssize_t more) except -1:
    cdef Py_ssize_t cap = out.cap * 2
    cdef char* buf
    if cap < out.size + more:
        cap = out.size + more
    buf = <char*>PyMem_Realloc(out.buf, cap)
    if buf == NULL:
        raise MemoryError()
    out.buf = buf
    out.cap = cap
    return 0


cdef inline int _put(Out* out, const char* data, Py_ssize_t n) except -1:
    if out.size + n > out.cap:
        _grow(out, n)
    memcpy(out.buf + out.size, data, n)
    out.size += n
    return 0


cdef int _put_bulk(Out* out, const char* data, Py_ssize_t n) except -1:
    """``$<n>\\r\\n<data>\\r\\n``"""
    cdef char digits[24]
    cdef Py_ssize_t d = 24
    cdef Py_ssize_t v = n
    if out.size + n + 32 > out.cap:
        _grow(out, n + 32)
    d -= 1
    digits[d] = c'0' + v % 10
    v //= 10
    while v:
        d -= 1
        digits[d] = c'0' + v % 10
        v //= 10
    out.buf[out.size] = c'$'
    memcpy(out.buf + out.size + 1, digits + d, 24 - d)
    out.size += 1 + 24 - d
    out.buf[out.size] = c'\r'
    out.buf[out.size + 1] = c'\n'
    memcpy(out.buf + out.size + 2, data, n)
    out.size += n + 2
    out.buf[out.size] = c'\r'
    out.buf[out.size + 1] = c'\n'
    out.size += 2
    return 0


cdef inline Py_ssize_t _bulk(
    const char* p, Py_ssize_t i, Py_ssize_t n, Py_ssize_t max_bulk,
    Py_ssize_t* start, Py_ssize_t* length,
):
    """The bulk string at ``p[i]`` (``$<len>\\r\\n<payload>\\r\\n``, the length without
    sign or leading zeros): its payload's start and length, and the index after it; -1
    when the bytes are not that (or end before it does)."""
    cdef Py_ssize_t value = 0
    cdef Py_ssize_t j
    cdef char c
    if i >= n or p[i] != c'$':
        return -1
    j = i + 1
    if j >= n:
        return -1
    c = p[j]
    if c == c'0':
        j += 1
    elif c'1' <= c <= c'9':
        while j < n and c'0' <= p[j] <= c'9':
            value = value * 10 + (p[j] - c'0')
            j += 1
            if j - i > 11:  # over 10 digits: not a plain request here
                return -1
    else:
        return -1
    if value > max_bulk or j + 1 >= n or p[j] != c'\r' or p[j + 1] != c'\n':
        return -1
    j += 2
    if j + value + 2 > n or p[j + value] != c'\r' or p[j + value + 1] != c'\n':
        return -1
    start[0] = j
    length[0] = value
    return j + value + 2


cdef inline bint _named(const char* p, Py_ssize_t at, char u0, char u1, char u2):
    """The three bytes at ``p[at]`` spell the name in upper case or in lower case."""
    cdef char a = p[at], b = p[at + 1], c = p[at + 2]
    return (a == u0 and b == u1 and c == u2) or (a == u0 + 32 and b == u1 + 32 and c == u2 + 32)


cdef enum:
    AHEAD = 32  # requests parsed before they run (their keys' slots prefetched together)


cdef Py_ssize_t _parse(
    const char* p, Py_ssize_t pos, Py_ssize_t n, Py_ssize_t max_bulk, bint readable,
    list keys, list values, Py_ssize_t* ends,
) except -1:
    """Parse up to AHEAD plain requests from ``p[pos]``: each one's key (and, for a SET,
    value; None for a GET) appended to ``keys`` and ``values``, where it ends in
    ``ends``. Stops before the first request it does not take; returns how many."""
    cdef Py_ssize_t count = 0, i, end, name_at, name_len, key_at, key_len, value_at, value_len
    cdef char argc
    while count < AHEAD and pos + 4 <= n:
        argc = p[pos + 1]
        if p[pos] != c'*' or (argc != c'2' and argc != c'3'):
            break
        if p[pos + 2] != c'\r' or p[pos + 3] != c'\n':
            break
        i = _bulk(p, pos + 4, n, max_bulk, &name_at, &name_len)
        if i < 0 or name_len != 3:
            break
        if argc == c'2':
            if not readable or not _named(p, name_at, c'G', c'E', c'T'):
                break
            end = _bulk(p, i, n, max_bulk, &key_at, &key_len)
            if end < 0:
                break
            keys.append(PyBytes_FromStringAndSize(p + key_at, key_len))
            values.append(None)
        else:
            if not _named(p, name_at, c'S', c'E', c'T'):
                break
            i = _bulk(p, i, n, max_bulk, &key_at, &key_len)
            if i < 0:
                break
            end = _bulk(p, i, n, max_bulk, &value_at, &value_len)
            if end < 0:
                break
            keys.append(PyBytes_FromStringAndSize(p + key_at, key_len))
            values.append(PyBytes_FromStringAndSize(p + value_at, value_len))
        ends[count] = end
        count += 1
        pos = end
    return count


def run(bytes data, object cmds, bint readable, bytes null, Py_ssize_t max_bulk, list result):
    """Run the plain GETs and SETs that ``data`` starts with; ``readable``: GETs may be
    served (``not cmds.guard_reads``), ``null``: the nil reply (RESP2 or RESP3).

    Returns the bytes taken (always whole requests) and sets ``result`` (a list of seven,
    reused from read to read: no tuple per read) to ``[ran, gets, last_set, replies,
    error, started, elapsed]``: the commands run and how many were GETs, whether the last
    was a SET, their replies (None when none ran), the exception a command layer call
    raised (None: none did; the request that raised was not taken), and when the loop
    started and how long it ran, in ns of the clock ``time.monotonic_ns()`` reads.

    Requests are parsed up to AHEAD at a time, and when more than one was, the keyspace
    slots of their keys are prefetched (``cmds.prefetch``) before they run, one by one
    and in order, as before: a request that stops the loop stops it at its own start."""
    cdef const char* p = PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t pos = 0, j, count
    cdef Py_ssize_t ran = 0, gets = 0
    cdef Py_ssize_t ends[AHEAD]
    cdef bint last_set = False
    cdef bint stopped = False
    cdef int writable = -1
    cdef int done
    cdef Out out
    cdef timespec t0, t1
    cdef bytes found
    cdef object error = None
    cdef object replies = None
    cdef list keys = []
    cdef list values = []
    clock_gettime(CLOCK_MONOTONIC, &t0)
    out.size = 0
    out.cap = 256 if n < 256 else n
    out.buf = <char*>PyMem_Malloc(out.cap)
    if out.buf == NULL:
        raise MemoryError()
    try:
        while not stopped:
            count = _parse(p, pos, n, max_bulk, readable, keys, values, ends)
            if count == 0:
                break
            if count > 1:
                cmds.prefetch(keys)
            for j in range(count):
                key = keys[j]
                value = values[j]
                if value is None:
                    try:
                        value = cmds.get_fast(key)  # (a method call: no bound method object)
                    except Exception as exc:
                        error = exc
                        stopped = True
                        break
                    if value is None:
                        _put(&out, PyBytes_AS_STRING(null), PyBytes_GET_SIZE(null))
                    else:
                        found = value
                        _put_bulk(&out, PyBytes_AS_STRING(found), PyBytes_GET_SIZE(found))
                    gets += 1
                    last_set = False
                else:
                    try:
                        if writable < 0:  # the read's first SET: fast_writes() and set_fast()
                            done = cmds.set_fast_first(key, value)
                            writable = 1 if done >= 0 else 0
                            if done <= 0:
                                stopped = True
                                break
                        elif not cmds.set_fast(key, value):
                            stopped = True
                            break
                    except Exception as exc:
                        error = exc
                        stopped = True
                        break
                    _put(&out, b"+OK\r\n", 5)
                    last_set = True
                ran += 1
                pos = ends[j]
            if count < AHEAD:  # (the parse stopped before a request it does not take)
                break
            del keys[:]
            del values[:]
        if out.size:
            replies = PyBytes_FromStringAndSize(out.buf, out.size)
    finally:
        PyMem_Free(out.buf)
    result[0] = ran
    result[1] = gets
    result[2] = last_set
    result[3] = replies
    result[4] = error
    clock_gettime(CLOCK_MONOTONIC, &t1)
    result[5] = t0.tv_sec * 1000000000 + t0.tv_nsec
    result[6] = (t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec)
    return pos
