/* Python's object memory on transparent huge pages: the C twin of hugearena.py.
 *
 * A master forks to send a full sync (synap/replication/fork_snapshot.py), and fork()
 * copies the page tables of the whole heap: ~9.5 ms for ~300 MB mapped with 4 KiB pages,
 * ~0.6 ms when the same memory is mapped with 2 MiB pages.  Almost all of a keyspace's
 * memory is pymalloc arenas (the key and value objects, 1 MiB each in CPython 3.11); the
 * rest is large blocks (the dict tables) from PyMem_RawMalloc (glibc malloc, mmap).
 *
 * install(reserve, raw_min) does two things, once per process:
 *
 * 1. Arenas.  It reserves ``reserve`` bytes of address space (PROT_NONE, MAP_NORESERVE,
 *    2 MiB aligned: no memory, no commit charge), marks it MADV_HUGEPAGE, and installs an
 *    arena allocator (PyObject_SetArenaAllocator) that hands out arena-sized slots of it.
 *    The range is made writable 2 MiB at a time as slots are first used (so that a strict
 *    overcommit policy charges only what is used).  A freed slot is reused (the lowest
 *    free one first, to keep the heap compact); when both slots of a 2 MiB block are
 *    free the block is given back to the kernel (MADV_DONTNEED), whole, so no huge page
 *    is split and RSS falls as it did with munmap.  A lone free slot beside a used one
 *    stays resident until reused (at most one slot per block).  Requests of another size
 *    than pymalloc's arenas (CPython 3.11 takes its threads' 16 KiB data stack chunks
 *    from this allocator too), and every request once the range is used up or cannot be
 *    made writable, go to the previous allocator (plain mmap), as do frees of memory
 *    outside the range: the arenas allocated before install() and those fallbacks.
 *    pymalloc calls these functions with the GIL held, so the state needs no lock.
 *
 * 2. Large blocks (raw_min > 0).  A hook on the RAW domain (PyMem_SetAllocator, wrapping
 *    the previous allocator as tracemalloc does) remembers every block of at least
 *    ``raw_min`` bytes (the dict tables) in a small table, and collapse() puts their
 *    2 MiB-aligned interiors on huge pages later, from the collapse thread.  They are
 *    not marked MADV_HUGEPAGE when allocated: a dict resize writes its whole new table
 *    at once, and on fresh huge pages that took ~5-9 ms per 2 MiB here (compaction),
 *    against ~0.4 ms for the same memory in 4 KiB pages: 120 ms stalls for a 20 MB
 *    table.  The hook changes no allocation.
 *
 * prefault(ahead) starts a thread that keeps ``ahead`` bytes of the range populated
 * (MADV_POPULATE_WRITE) beyond the arenas handed out: the first touch of a fresh 2 MiB
 * page can cost milliseconds (zeroing 2 MiB, and compaction when no free huge page is at
 * hand), and the thread pays it instead of the event loop (see there).
 *
 * collapse() puts blocks split by copy-on-write back on huge pages (see there).
 * stats() -> dict of counters.  Tests: tests/unit/test_hugepages.py,
 * tests/integration/test_huge_pages.py. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#define BLOCK ((size_t)2 << 20) /* a huge page on x86-64 and arm64 (4 KiB base pages) */

static PyObjectArenaAllocator prev_arena;
static PyMemAllocatorEx prev_raw;
static int installed;
static int raw_hooked;

static char *base;        /* the reserved range: [base, base + nslots * slot) */
/* pymalloc's arena size (ARENA_SIZE in Objects/obmalloc.c): 1 MiB with the radix tree of
 * 64-bit builds since 3.10, 256 KiB before */
#if PY_VERSION_HEX >= 0x030A0000 && SIZEOF_VOID_P == 8
#define ARENA ((size_t)1 << 20)
#else
#define ARENA ((size_t)256 << 10)
#endif
static size_t slot = ARENA;
static size_t nslots;
static size_t high;       /* slots [0, high) have been handed out at least once */
static size_t hint;       /* no free slot below this one */
static size_t writable;   /* bytes from base made PROT_READ|PROT_WRITE (grow_lock) */
static uint64_t *used;    /* one bit per slot */

static size_t live;       /* arenas in the range now */
static size_t fallback_allocs; /* arenas the previous allocator gave (range full) */
static size_t other_sizes; /* requests of another size, passed to the previous allocator */
static size_t released;   /* 2 MiB blocks given back with MADV_DONTNEED */
static size_t reused;     /* slots handed out again after a free */
static size_t raw_blocks; /* large RAW blocks remembered for collapse() (monotonic) */
static size_t raw_min;
static uintptr_t heap_start; /* /proc/self/stat start_brk, read at install() */
static uintptr_t read_start_brk(void);

/* Growing the writable part of the range: the event loop's thread (arena_alloc, GIL
 * held) and the prefault thread both do it, under grow_lock, which also guards the
 * prefault thread's state; neither holds it across anything slower than mprotect. */
static pthread_mutex_t grow_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t prefault_wake = PTHREAD_COND_INITIALIZER;
enum { PREFAULT_OFF, PREFAULT_RUNNING, PREFAULT_UNSUPPORTED, PREFAULT_FAILED, PREFAULT_DONE };
static int prefault_state;       /* PREFAULT_* (grow_lock) */
static size_t prefault_ahead;    /* bytes kept populated beyond the high-water mark */
static size_t populated;         /* [base, base + populated) populated by the thread */
static size_t prefaulted_blocks; /* 2 MiB blocks the thread populated */
static uint64_t prefault_longest_ns; /* the slowest of them */
static int prefault_errno;

static inline int is_used(size_t s) { return (int)((used[s >> 6] >> (s & 63)) & 1); }
static inline void set_used(size_t s) { used[s >> 6] |= (uint64_t)1 << (s & 63); }
static inline void clear_used(size_t s) { used[s >> 6] &= ~((uint64_t)1 << (s & 63)); }

static size_t find_free(void) {
    /* the lowest free slot below high, or high */
    size_t s = hint;
    while (s < high) {
        uint64_t word = used[s >> 6] | (((uint64_t)1 << (s & 63)) - 1);
        if (word != UINT64_MAX) {
            size_t found = (s & ~(size_t)63) + (size_t)__builtin_ctzll(~word);
            return found < high ? found : high;
        }
        s = (s | 63) + 1;
    }
    return high;
}

/* Make [base, base + end) writable, rounded up to whole blocks (0, or -1 and errno);
 * grow_lock held.  The range is whole blocks, so the rounding stays inside it. */
static int grow_writable_locked(size_t end) {
    size_t w = writable;
    if (end <= w)
        return 0;
    size_t grow = ((end - w) + BLOCK - 1) / BLOCK * BLOCK;
    if (mprotect(base + w, grow, PROT_READ | PROT_WRITE) != 0)
        return -1;
    __atomic_store_n(&writable, w + grow, __ATOMIC_RELEASE);
    return 0;
}

static int grow_writable(size_t end) {
    pthread_mutex_lock(&grow_lock);
    int rc = grow_writable_locked(end);
    pthread_mutex_unlock(&grow_lock);
    return rc;
}

static void *arena_alloc(void *ctx, size_t size) {
    (void)ctx;
    if (size != slot) {
        /* not a pymalloc arena: CPython 3.11 also takes the data stack chunks of its
         * threads (16 KiB) from this allocator */
        other_sizes++;
        return prev_arena.alloc(prev_arena.ctx, size);
    }
    if (nslots == 0)
        goto fallback;
    size_t s = find_free();
    if (s >= nslots)
        goto fallback;
    size_t end = (s + 1) * slot;
    if (end > __atomic_load_n(&writable, __ATOMIC_ACQUIRE) && grow_writable(end) != 0)
        goto fallback;
    if (s < high)
        reused++;
    else
        __atomic_store_n(&high, s + 1, __ATOMIC_RELEASE);
    set_used(s);
    hint = s + 1;
    live++;
    size_t ahead = __atomic_load_n(&prefault_ahead, __ATOMIC_RELAXED);
    if (ahead && high * slot + ahead > __atomic_load_n(&populated, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&grow_lock); /* wake the prefault thread: we near its frontier */
        pthread_cond_signal(&prefault_wake);
        pthread_mutex_unlock(&grow_lock);
    }
    return base + s * slot;
fallback:
    fallback_allocs++;
    return prev_arena.alloc(prev_arena.ctx, size);
}

static void arena_free(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    char *p = (char *)ptr;
    if (base == NULL || p < base || p >= base + nslots * slot) {
        /* allocated before install(), or by the fallback: not ours */
        prev_arena.free(prev_arena.ctx, ptr, size);
        return;
    }
    size_t s = (size_t)(p - base) / slot;
    clear_used(s);
    live--;
    if (s < hint)
        hint = s;
    size_t per_block = BLOCK / slot;
    size_t first = s / per_block * per_block;
    for (size_t i = first; i < first + per_block && i < nslots; i++)
        if (is_used(i))
            return;
    /* the whole block is free: give its memory back (it stays writable, reads as zero) */
    if (madvise(base + first * slot, BLOCK, MADV_DONTNEED) == 0)
        released++;
}

/* The live large RAW blocks (the dict tables), for collapse(): a small table under a
 * mutex (the RAW domain runs without the GIL). A block beyond BIG_MAX is advised
 * MADV_HUGEPAGE when allocated (khugepaged's to collapse); frees look the table up only
 * while it holds something. */
#define BIG_MAX 64
static struct {
    void *p;
    size_t n;
} big[BIG_MAX];
static int big_count;
static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;

static void big_forget(void *p) {
    if (p == NULL || __atomic_load_n(&big_count, __ATOMIC_ACQUIRE) == 0)
        return;
    pthread_mutex_lock(&big_lock);
    for (int i = 0; i < BIG_MAX; i++)
        if (big[i].p == p) {
            big[i].p = NULL;
            __atomic_fetch_sub(&big_count, 1, __ATOMIC_RELEASE);
            break;
        }
    pthread_mutex_unlock(&big_lock);
}

static int big_remember(void *p, size_t n) {
    int found = 0;
    pthread_mutex_lock(&big_lock);
    for (int i = 0; i < BIG_MAX; i++)
        if (big[i].p == NULL) {
            big[i].p = p;
            big[i].n = n;
            __atomic_fetch_add(&big_count, 1, __ATOMIC_RELEASE);
            found = 1;
            break;
        }
    pthread_mutex_unlock(&big_lock);
    return found;
}

static void advise_interior(void *ptr, size_t n) {
    uintptr_t start = ((uintptr_t)ptr + BLOCK - 1) & ~(uintptr_t)(BLOCK - 1);
    uintptr_t end = ((uintptr_t)ptr + n) & ~(uintptr_t)(BLOCK - 1);
    if (end > start) { /* (collapse() advises and collapses it, off the event loop) */
        __atomic_fetch_add(&raw_blocks, 1, __ATOMIC_RELAXED);
        if (!big_remember(ptr, n)) /* the table is full: khugepaged's, as before */
            (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
    }
}

static void *raw_malloc(void *ctx, size_t n) {
    (void)ctx;
    void *p = prev_raw.malloc(prev_raw.ctx, n);
    if (p != NULL && n >= raw_min)
        advise_interior(p, n);
    return p;
}

static void *raw_calloc(void *ctx, size_t nelem, size_t elsize) {
    (void)ctx;
    void *p = prev_raw.calloc(prev_raw.ctx, nelem, elsize);
    if (p != NULL && elsize != 0 && nelem >= raw_min / elsize)
        advise_interior(p, nelem * elsize);
    return p;
}

static void *raw_realloc(void *ctx, void *ptr, size_t n) {
    (void)ctx;
    big_forget(ptr); /* before: once realloc returns, ptr may be another block's */
    void *p = prev_raw.realloc(prev_raw.ctx, ptr, n); /* (failed: ptr lives on, forgotten) */
    if (p != NULL && n >= raw_min)
        advise_interior(p, n);
    return p;
}

static void raw_free(void *ctx, void *ptr) {
    (void)ctx;
    big_forget(ptr); /* before the free: after it the address can be handed out again */
    prev_raw.free(prev_raw.ctx, ptr);
}

static PyObject *install(PyObject *self, PyObject *args) {
    (void)self;
    Py_ssize_t reserve, min_raw;
    if (!PyArg_ParseTuple(args, "nn:install", &reserve, &min_raw))
        return NULL;
    if (installed) {
        PyErr_SetString(PyExc_RuntimeError, "the huge-page arena allocator is already installed");
        return NULL;
    }
    if (reserve < (Py_ssize_t)BLOCK || min_raw < 0) {
        PyErr_SetString(PyExc_ValueError, "reserve must be at least 2 MiB and raw_min >= 0");
        return NULL;
    }
    size_t size = (size_t)reserve / BLOCK * BLOCK;
    char *raw = (char *)mmap(NULL, size + BLOCK, PROT_NONE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return PyErr_SetFromErrno(PyExc_OSError);
    /* 2 MiB alignment: drop the unaligned head and the tail beyond size */
    char *aligned = (char *)(((uintptr_t)raw + BLOCK - 1) & ~(uintptr_t)(BLOCK - 1));
    if (aligned > raw)
        munmap(raw, (size_t)(aligned - raw));
    size_t tail = (size_t)((raw + size + BLOCK) - (aligned + size));
    if (tail)
        munmap(aligned + size, tail);
    if (madvise(aligned, size, MADV_HUGEPAGE) != 0) {
        int err = errno;
        munmap(aligned, size);
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    used = (uint64_t *)calloc((size / slot + 63) / 64, sizeof(uint64_t));
    if (used == NULL) {
        munmap(aligned, size);
        return PyErr_NoMemory();
    }
    base = aligned;
    heap_start = read_start_brk();
    nslots = size / slot; /* divided by the slot size at the first request */
    PyObject_GetArenaAllocator(&prev_arena);
    PyObjectArenaAllocator mine = {NULL, arena_alloc, arena_free};
    PyObject_SetArenaAllocator(&mine);
    if (min_raw > 0) {
        raw_min = (size_t)min_raw;
        PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &prev_raw);
        PyMemAllocatorEx hook = {NULL, raw_malloc, raw_calloc, raw_realloc, raw_free};
        PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &hook);
        raw_hooked = 1;
    }
    installed = 1;
    Py_RETURN_NONE;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* The prefault thread.
 *
 * A fresh 2 MiB page is one fault: the kernel zeroes 2 MiB and, when no free huge page is
 * at hand, compacts memory to make one (THP defrag "madvise", the default, does that in
 * the faulting thread for MADV_HUGEPAGE ranges).  Measured here: 0.17 ms with huge pages
 * free, 5-9 ms without, against ~1.5 us for a 4 KiB page.  A master whose data set grows
 * would pay it on the event loop, once per 2 MiB of new objects.  This thread keeps
 * ``ahead`` bytes beyond the arenas handed out already populated, one block per
 * MADV_POPULATE_WRITE call (which faults pages in as if written, and leaves the contents
 * of pages already present alone, so it is harmless on a block in use).  It never holds
 * grow_lock while the kernel works.  Not covered: a block given back (MADV_DONTNEED) and
 * reused later faults on the event loop again, as without the thread.  A fork() waits
 * for a populate in flight (it takes the address space's lock). */
/* The next block to populate (grow_lock held): after the last one populated, or after
 * the arenas handed out when the event loop outran us (its blocks are faulted in). */
static size_t prefault_next(void) {
    size_t h = __atomic_load_n(&high, __ATOMIC_ACQUIRE) * slot / BLOCK * BLOCK;
    return h > populated ? h : populated;
}

static void *prefault_main(void *unused) {
    (void)unused;
    size_t end = nslots * slot;
    pthread_mutex_lock(&grow_lock);
    for (;;) {
        size_t at = prefault_next();
        while (prefault_state == PREFAULT_RUNNING && at + BLOCK <= end &&
               __atomic_load_n(&high, __ATOMIC_ACQUIRE) * slot + prefault_ahead <= at) {
            pthread_cond_wait(&prefault_wake, &grow_lock);
            at = prefault_next();
        }
        /* (at the end of the range: the whole range is populated, nothing left to do) */
        if (prefault_state != PREFAULT_RUNNING || at + BLOCK > end)
            break;
        /* when the block is not writable yet, the whole window in one call: the loop then
         * has no mprotect of its own to make (which would wait for the address space's
         * lock behind a populate) */
        size_t want = __atomic_load_n(&high, __ATOMIC_ACQUIRE) * slot + prefault_ahead;
        if (want < at + BLOCK)
            want = at + BLOCK;
        if (at + BLOCK > writable && grow_writable_locked(want < end ? want : end) != 0) {
            prefault_errno = errno;
            prefault_state = PREFAULT_FAILED;
            break;
        }
        pthread_mutex_unlock(&grow_lock);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = madvise(base + at, BLOCK, MADV_POPULATE_WRITE);
        int err = errno;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        pthread_mutex_lock(&grow_lock);
        if (rc != 0) {
            prefault_errno = err;
            /* EINVAL: a kernel before 5.14; ENOMEM and the rest: stop, the loop faults */
            prefault_state = err == EINVAL ? PREFAULT_UNSUPPORTED : PREFAULT_FAILED;
            break;
        }
        uint64_t ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)(t1.tv_nsec - t0.tv_nsec);
        if (ns > prefault_longest_ns)
            prefault_longest_ns = ns;
        prefaulted_blocks++;
        __atomic_store_n(&populated, at + BLOCK, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&prefault_ahead, 0, __ATOMIC_RELAXED); /* arena_alloc stops waking us */
    if (prefault_state == PREFAULT_RUNNING)
        prefault_state = PREFAULT_DONE; /* the whole range is populated */
    pthread_mutex_unlock(&grow_lock);
    return NULL;
}

/* fork(): the child has no prefault thread.  grow_lock is held across fork() so that the
 * child's copy is not locked by a thread that is not there. */
static void atfork_prepare(void) { pthread_mutex_lock(&grow_lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&grow_lock); }
static void atfork_child(void) {
    __atomic_store_n(&prefault_ahead, 0, __ATOMIC_RELAXED);
    if (prefault_state == PREFAULT_RUNNING)
        prefault_state = PREFAULT_OFF;
    pthread_cond_init(&prefault_wake, NULL);
    pthread_mutex_unlock(&grow_lock);
}

static PyObject *prefault(PyObject *self, PyObject *args) {
    (void)self;
    Py_ssize_t ahead;
    if (!PyArg_ParseTuple(args, "n:prefault", &ahead))
        return NULL;
    if (!installed) {
        PyErr_SetString(PyExc_RuntimeError, "install() the huge-page arena allocator first");
        return NULL;
    }
    if (ahead < (Py_ssize_t)BLOCK) {
        PyErr_SetString(PyExc_ValueError, "prefault: ahead must be at least 2 MiB");
        return NULL;
    }
    pthread_mutex_lock(&grow_lock);
    int state = prefault_state;
    pthread_mutex_unlock(&grow_lock);
    if (state != PREFAULT_OFF) {
        PyErr_SetString(PyExc_RuntimeError, "the prefault thread was already started");
        return NULL;
    }
    static int atfork_done;
    if (!atfork_done && pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0) {
        PyErr_SetString(PyExc_OSError, "pthread_atfork failed");
        return NULL;
    }
    atfork_done = 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    size_t stack = 64 << 10;
    if (stack < (size_t)PTHREAD_STACK_MIN)
        stack = (size_t)PTHREAD_STACK_MIN; /* 128 KiB on aarch64 */
    (void)pthread_attr_setstacksize(&attr, stack);
    pthread_mutex_lock(&grow_lock);
    __atomic_store_n(&prefault_ahead, (size_t)ahead / BLOCK * BLOCK, __ATOMIC_RELAXED);
    prefault_state = PREFAULT_RUNNING;
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, prefault_main, NULL);
    if (rc != 0) {
        __atomic_store_n(&prefault_ahead, 0, __ATOMIC_RELAXED);
        prefault_state = PREFAULT_OFF;
    }
    pthread_mutex_unlock(&grow_lock);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif

/* collapse(what) -> (ranges collapsed, ranges that failed, supported).
 *
 * While a fork's child shares the master's memory, each page the master writes is copied
 * 4 KiB at a time, which splits its huge page into 4 KiB mappings (Linux >= 5.8), and
 * the next fork() would copy those page tables again.  MADV_COLLAPSE (Linux 6.1) puts a
 * range back on huge pages (blocks already huge cost a check).  Three kinds of range:
 * each run of 2 MiB blocks holding a live arena (blocks without one are left alone:
 * collapsing them would make their free memory resident), the interior of each live
 * large RAW block (marked MADV_HUGEPAGE here first, so that khugepaged keeps it huge;
 * this is also how a new dict table gets on huge pages), and glibc's brk heap (marked MADV_HUGEPAGE here first: it holds the
 * blocks of 513 B .. the mmap threshold, e.g. large replication records).  One madvise
 * call per range (each call drains the kernel's per-CPU page lists once).  The GIL is
 * released while the kernel works, so a thread runs this beside the event loop. */
#define RANGES_MAX (BIG_MAX + 256)
#define COLLAPSE_MEMORY 1 /* the arenas and the large blocks */
#define COLLAPSE_HEAP 2   /* glibc's brk heap */
#define COLLAPSE_ALL 3

static uintptr_t read_start_brk(void) {
    char buf[2048];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (p == NULL)
        return 0;
    p++;
    for (int field = 2; field < 47 && p != NULL; field++) { /* start_brk is field 47 */
        while (*p == ' ')
            p++;
        if (field == 46)
            return (uintptr_t)strtoull(p, NULL, 10);
        p = strchr(p, ' ');
    }
    return 0;
}

/* Whether this kernel has MADV_COLLAPSE (Linux 6.1): asked once, of a 2 MiB block of our
 * own with every page present (EINVAL on a range means "unknown advice" only then). */
static int collapse_support = -1;

static int collapse_supported(void) {
    int known = __atomic_load_n(&collapse_support, __ATOMIC_ACQUIRE);
    if (known >= 0)
        return known;
    int result = 1;
    char *raw = (char *)mmap(NULL, 2 * BLOCK, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw != MAP_FAILED) {
        char *probe = (char *)(((uintptr_t)raw + BLOCK - 1) & ~(uintptr_t)(BLOCK - 1));
        memset(probe, 1, BLOCK);
        if (madvise(probe, BLOCK, MADV_COLLAPSE) != 0 && errno == EINVAL)
            result = 0;
        munmap(raw, 2 * BLOCK);
    }
    __atomic_store_n(&collapse_support, result, __ATOMIC_RELEASE);
    return result;
}

static PyObject *collapse(PyObject *self, PyObject *args) {
    (void)self;
    int what = COLLAPSE_ALL;
    if (!PyArg_ParseTuple(args, "|i:collapse", &what))
        return NULL;
    if (!installed)
        return Py_BuildValue("(nnO)", (Py_ssize_t)0, (Py_ssize_t)0, Py_True);
    struct {
        uintptr_t start, end;
    } ranges[RANGES_MAX];
    int nr = 0;
    if (what & COLLAPSE_MEMORY) { /* runs of blocks with a live arena (GIL held) */
        size_t per_block = BLOCK / slot;
        size_t nblocks = __atomic_load_n(&writable, __ATOMIC_ACQUIRE) / BLOCK;
        size_t run = 0, len = 0;
        for (size_t b = 0; b <= nblocks; b++) {
            int live_block = 0;
            for (size_t i = b * per_block; b < nblocks && i < (b + 1) * per_block && i < high; i++)
                if (is_used(i)) {
                    live_block = 1;
                    break;
                }
            if (live_block) {
                if (len == 0)
                    run = b;
                len++;
            } else if (len > 0 && nr < RANGES_MAX - BIG_MAX - 1) {
                ranges[nr].start = (uintptr_t)base + run * BLOCK;
                ranges[nr].end = (uintptr_t)base + (run + len) * BLOCK;
                nr++;
                len = 0;
            } else {
                len = 0;
            }
        }
    }
    int first_big = nr;
    pthread_mutex_lock(&big_lock);
    for (int i = 0; i < BIG_MAX && (what & COLLAPSE_MEMORY); i++)
        if (big[i].p != NULL) {
            ranges[nr].start = ((uintptr_t)big[i].p + BLOCK - 1) & ~(uintptr_t)(BLOCK - 1);
            ranges[nr].end = ((uintptr_t)big[i].p + big[i].n) & ~(uintptr_t)(BLOCK - 1);
            if (ranges[nr].end > ranges[nr].start)
                nr++;
        }
    pthread_mutex_unlock(&big_lock);
    int end_big = nr;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t brk_end = heap_start ? (uintptr_t)sbrk(0) : 0;
    Py_ssize_t done = 0, failed = 0;
    int supported;
    Py_BEGIN_ALLOW_THREADS
    supported = collapse_supported();
    if ((what & COLLAPSE_HEAP) && brk_end > heap_start + BLOCK) {
        uintptr_t lo = (heap_start + page - 1) & ~(page - 1);
        uintptr_t hi = brk_end & ~(page - 1);
        /* the whole heap: khugepaged may collapse it too, and it stays one mapping */
        if (hi > lo && madvise((void *)lo, hi - lo, MADV_HUGEPAGE) == 0) {
            ranges[nr].start = (heap_start + BLOCK - 1) & ~(uintptr_t)(BLOCK - 1);
            ranges[nr].end = brk_end & ~(uintptr_t)(BLOCK - 1);
            if (ranges[nr].end > ranges[nr].start)
                nr++;
        }
    }
    for (int k = 0; k < nr && supported; k++) {
        if (k >= first_big && k < end_big) /* a large block: huge from now on (khugepaged) */
            (void)madvise((void *)ranges[k].start, ranges[k].end - ranges[k].start, MADV_HUGEPAGE);
        if (madvise((void *)ranges[k].start, ranges[k].end - ranges[k].start, MADV_COLLAPSE) == 0)
            done++;
        else
            /* EAGAIN / ENOMEM: no huge page free now; EINVAL: a 2 MiB block of the range
             * has no page present (a block freed since, or not yet written) */
            failed++;
    }
    Py_END_ALLOW_THREADS
    return Py_BuildValue("(nnO)", done, failed, supported ? Py_True : Py_False);
}

static PyObject *heap_end(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyLong_FromSize_t((size_t)(uintptr_t)sbrk(0));
}

static PyObject *stats(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    static const char *states[] = {"off", "running", "unsupported", "failed", "done"};
    pthread_mutex_lock(&grow_lock);
    int state = prefault_state;
    size_t blocks = prefaulted_blocks, done = populated;
    uint64_t longest = prefault_longest_ns;
    int err = prefault_errno;
    pthread_mutex_unlock(&grow_lock);
    PyObject *prefault_info = Py_BuildValue(
        "{s:s,s:n,s:n,s:n,s:d,s:i}", "prefault", states[state], "prefault_ahead_bytes",
        (Py_ssize_t)__atomic_load_n(&prefault_ahead, __ATOMIC_RELAXED), "prefaulted_blocks", (Py_ssize_t)blocks, "populated_bytes",
        (Py_ssize_t)done, "prefault_longest_ms", (double)longest / 1e6, "prefault_errno", err);
    if (prefault_info == NULL)
        return NULL;
    PyObject *out = Py_BuildValue(
        "{s:O,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n}", "installed", installed ? Py_True : Py_False,
        "reserved_bytes", (Py_ssize_t)(nslots * slot), "arena_bytes",
        (Py_ssize_t)slot, "writable_bytes", (Py_ssize_t)__atomic_load_n(&writable, __ATOMIC_ACQUIRE), "arenas", (Py_ssize_t)live,
        "high_water", (Py_ssize_t)high, "reused", (Py_ssize_t)reused, "released_blocks",
        (Py_ssize_t)released, "fallback_arenas", (Py_ssize_t)fallback_allocs, "other_sizes", (Py_ssize_t)other_sizes,
        "raw_blocks", (Py_ssize_t)__atomic_load_n(&raw_blocks, __ATOMIC_RELAXED),
        "raw_min_bytes", (Py_ssize_t)(raw_hooked ? raw_min : 0), "heap_start",
        (Py_ssize_t)heap_start);
    if (out != NULL && PyDict_Update(out, prefault_info) != 0)
        Py_CLEAR(out);
    Py_DECREF(prefault_info);
    return out;
}

static PyObject *range(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    if (!installed)
        Py_RETURN_NONE;
    size_t size = nslots * slot;
    return Py_BuildValue("(nn)", (Py_ssize_t)(uintptr_t)base, (Py_ssize_t)size);
}

static PyMethodDef methods[] = {
    {"install", install, METH_VARARGS,
     "install(reserve, raw_min): pymalloc arenas from a MADV_HUGEPAGE range of reserve bytes; "
     "RAW blocks of at least raw_min bytes (0: none) marked MADV_HUGEPAGE."},
    {"stats", stats, METH_NOARGS, "stats() -> dict: the allocator's counters."},
    {"prefault", prefault, METH_VARARGS,
     "prefault(ahead): a thread keeps ahead bytes of the range populated beyond the arenas "
     "handed out (MADV_POPULATE_WRITE), so the event loop does not take the first faults."},
    {"collapse", collapse, METH_VARARGS,
     "collapse(what=3) -> (collapsed, failed, supported): MADV_COLLAPSE the arenas and large "
     "blocks (1), glibc's heap (2), or both (3)."},
    {"heap_end", heap_end, METH_NOARGS, "heap_end() -> the brk heap's end now (sbrk(0))."},
    {"address_range", range, METH_NOARGS,
     "address_range() -> (start, length) of the reserved range, or None before install()."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "hugearena",
    "pymalloc arenas on transparent huge pages (C twin of synap/hugearena.py).", -1, methods,
};

PyMODINIT_FUNC PyInit_hugearena(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "BUILT", 1) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
