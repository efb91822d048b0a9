/* Tighter size classes for mid-sized Python objects: the C twin of tightalloc.py.
 *
 * pymalloc rounds every request up to a multiple of 16 bytes (its ALIGNMENT on 64-bit
 * builds since CPython 3.8).  A keyspace's values are mostly bytes objects of 33 bytes
 * of header plus the value: a 100-byte value asks for 133 bytes and gets 144.  For half
 * of all sizes the next multiple of 8 is 8 bytes smaller than the next multiple of 16,
 * and jemalloc (Redis) has classes every 8 or 16 bytes there.
 *
 * install(lo, hi, via_arenas) hooks the OBJ domain (PyMem_SetAllocator, wrapping the
 * previous allocator as tracemalloc does).  A request of n bytes, lo <= n <= hi, whose
 * next multiple of 8 is an odd multiple of 8 (16k + 8: where pymalloc would waste 8
 * bytes more) is served here from a pool of 16k + 8-byte blocks; every other request,
 * and every free or realloc of memory that is not ours, goes to the previous allocator
 * unchanged.  Blocks are 8-byte aligned, as pymalloc's were before 3.8 (every CPython
 * object is; a C type whose struct needs 16 has a size that is a multiple of 16, which
 * never comes here).
 *
 * Layout, as pymalloc's: 1 MiB chunks (1 MiB aligned) cut into 16 KiB pools, one size
 * class per pool; a pool's header holds its free list, and a block's pool is its address
 * rounded down to 16 KiB.  A bitmap with one bit per 1 MiB of the address space (32 MiB
 * reserved, untouched except where chunks are) says which chunks are ours, so a
 * free costs one load to tell ours from the previous allocator's.  An empty pool goes
 * back to its chunk; a chunk whose pools are all empty is given back (one spare kept),
 * so RSS falls when keys are deleted, as with pymalloc's arenas.
 *
 * Chunks come from the arena allocator in place at install() when via_arenas is true
 * (synap.hugearena's: then they live in its huge-page range, are prefaulted and
 * collapsed with pymalloc's arenas) as long as it hands out 1 MiB-aligned memory, else
 * from mmap.  pymalloc calls the OBJ domain with the GIL held, so the state needs no
 * lock; a forked child inherits it whole.
 *
 * detach(b) copies a bytes object into memory marked MADV_WIPEONFORK (see dchunk below):
 * the replication log's records, which a full sync's forked child never reads, so that
 * fork() does not copy their page tables (~40 % of a master's memory after a load of
 * MSETs; records shorter than detach_min stay).  The child must not touch them: it runs with the collector off from the fork
 * on (synap/replication/fork_snapshot.py).
 *
 * share(b) copies a bytes object of up to SHARE_MAX bytes (a keyspace value; a master
 * stores every value so) into chunks mapped MAP_SHARED: fork() copies no page tables for
 * a shared mapping either, yet the child reads them (the full sync's snapshot).  Values
 * are immutable, so what the child reads is what the master stored, with two rules:
 * while a child may read (reader_started() .. reader_ended()) a freed shared block is
 * quarantined, not reused (the child may still be reading the value it held), and
 * release_quarantined() gives those back afterwards; and the child never writes there,
 * not even a reference count, which is why the snapshot is encoded by
 * synap/replication/snapcodec.c from borrowed references (a forked child ignores frees
 * of shared blocks and shares nothing).  Shared blocks come in 8-byte classes, 40 to
 * SHARE_MAX.  Tests: tests/unit/test_tightalloc.py. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18 /* Linux 4.14 */
#endif

#define CHUNK ((size_t)1 << 20)
#define POOL ((size_t)16 << 10)
#define POOLS (CHUNK / POOL)
#define NCLASSES 32       /* block sizes 16k + 8 for k < 32: 8 .. 504 */
#define SHARE_MAX 504     /* largest shared block: 8k for k < SCLASSES */
#define SCLASSES 64
#define ADDRESS_BITS 48   /* user space on x86-64 and arm64 (4-level tables) */
#define MAP_WORDS (((size_t)1 << (ADDRESS_BITS - 20)) / 64)

typedef struct chunk chunk;

typedef struct pool {
    struct pool *next, *prev; /* in the class's list of pools with a free block */
    void *freelist;           /* freed blocks, linked through their first word */
    chunk *owner;
    uint32_t bump;            /* offset of the first block never handed out */
    uint32_t nused, cap, size;
    uint32_t cls;             /* index in its heap's usable[] */
    uint32_t gen;             /* shr: the generation it was made in (reader_started) */
} pool;

/* The pools of one kind of memory: the 16k + 8 classes in private chunks (priv), or the
 * 8k classes in shared chunks (shr, share()). */
typedef struct heap {
    pool *usable[SCLASSES];
    chunk *roomy;             /* chunks with an empty pool */
    int shared, starved;      /* starved: a chunk could not be had, serve nothing until one is freed */
    size_t chunks_live, chunks_released, blocks_live, pools_live;
    size_t bytes_live;        /* sum of the live blocks' sizes */
    size_t odd_blocks;        /* live blocks of 16k + 8 bytes: pymalloc's would be 8 more */
} heap;

#define HEADER ((sizeof(pool) + 7) & ~(size_t)7)

struct chunk {
    char *base;
    chunk *next, *prev;       /* in the list of chunks with an empty pool */
    pool *empty;              /* pools given back, linked through next */
    uint32_t nempty;          /* given back + never used */
    uint32_t fresh;           /* pools [fresh, POOLS) never used */
    int from_arena;
    int in_range;             /* shr: carved from a reserved range (below) */
    heap *h;
    chunk *all_next, *all_prev; /* shr: every shared chunk outside a range (read-only in a child) */
};

static PyMemAllocatorEx prev;
static PyObjectArenaAllocator arenas;
static PyMemAllocatorEx prev_mem;
static int installed, via_arenas;
static int forked_child;      /* this process is a fork of the one that installed */
static int sharing;           /* share() copies (install()) */
static Py_ssize_t detach_min = 512; /* smaller records stay where they are (install()) */
static size_t lo, span;       /* n is a candidate when n - lo <= span */
static uint64_t *map;         /* one bit per 1 MiB chunk of the address space */
static heap priv, shr = {.shared = 1};
/* Shared blocks freed while a child may read them wait in a quarantine instead.  Each
 * reader_started() seals every shared pool made so far (its seal: their generation is
 * that or older) and parks those with free blocks, so that blocks allocated after the
 * fork come from fresh pools and are freed as usual; the quarantine is so bounded by
 * what the heap held at a fork, as copy-on-write is by the data set.  A child reads only
 * blocks that were live at its fork: a freed block waits, tagged with the newest live
 * seal, until every child whose seal is at most that tag is gone (a child forked after
 * the free never saw the block).  So when children overlap, each one's end gives back
 * what only it and older ones could read.  The parked pools come back when none is left. */
#define MAX_READERS 64        /* live readers (full syncs running at once) */
static long readers;
static uint32_t live_seals[MAX_READERS];
static uint32_t newest_live;  /* the largest live seal (0: no reader) */
typedef struct qbatch {
    uint32_t tag;             /* the newest live seal when these were freed */
    void *head;               /* the blocks, linked through their first word */
    size_t count, bytes;
    struct qbatch *next;
} qbatch;
static qbatch *qhead, *qtail; /* oldest first */
static qbatch qspare;         /* taken when PyMem_RawMalloc fails (never freed) */
static int qspare_used;
static size_t quarantined, quarantined_bytes, share_fallbacks;
static uint32_t generation = 1;
static pool *parked[SCLASSES];
static chunk *shared_all;
/* Shared chunks are carved from ranges of RANGE bytes reserved whole (MAP_SHARED |
 * MAP_NORESERVE: address space, no memory until touched): a range is one mapping, so a
 * master holding many GiB of values keeps few (vm.max_map_count; fork() walks each one)
 * and a child makes a range read-only with one mprotect.  A released chunk's pages go
 * back to the kernel (MADV_REMOVE) and the chunk is reused before the range grows.
 * Should no range be had, a chunk is its own mapping (shared_all). */
#define RANGE ((size_t)1 << 30)
#define MAX_RANGES 4096
static char *ranges[MAX_RANGES];
static unsigned nranges;
static size_t range_used;     /* bytes of ranges[nranges - 1] handed out at least once */
static chunk *range_spare;    /* released chunks in a range, linked through all_next */
static int range_failed;      /* a reservation failed: chunks are their own mappings */
static size_t protect_failures; /* in a child: shared chunks left writable */

/* Detached objects (detach()): copies of bytes objects in chunks marked MADV_WIPEONFORK:
 * fork() does not copy their page tables, and a forked child finds the range mapped but
 * zeroed (so nothing it maps later lands where the bitmaps say "detached"; it abandons
 * the chunks, see at_fork_child).  A detached chunk
 * starts with a dchunk header and is filled by bumping; each block is its size (8 bytes)
 * then the object.  A chunk goes back to the kernel when its last block is freed (the
 * replication log frees its records oldest first, so chunks empty in order); one bigger
 * than CHUNK holds one block.  Its first 1 MiB is marked in both map and dmap. */
typedef struct {
    size_t live, bump, size;
} dchunk;

#define DHEADER ((sizeof(dchunk) + 15) & ~(size_t)15)

static uint64_t *dmap;        /* one bit per 1 MiB: the start of a detached chunk */
/* Emptied CHUNK-sized detached chunks kept for reuse, linked through their first word:
 * the log frees its oldest records as fast as it copies new ones, and reusing resident
 * memory spares a page fault per 4 KiB (~1.5 us here) and an munmap per chunk. */
#define DSPARE_MAX 16
static void *dspare;
static size_t dspare_count;
static dchunk *dcur;          /* the detached chunk being filled */
static size_t dchunks_live, dobjects_live, dbytes_live, detach_fallbacks;

/* The bit of the 1 MiB that p lies in, in one of the two bitmaps (below 2^ADDRESS_BITS). */
static inline int bit_get(const uint64_t *bits, const void *p) {
    uintptr_t a = (uintptr_t)p;
    return (bits[a >> 26] >> ((a >> 20) & 63)) & 1;
}

static inline int detached(const void *p) { return bit_get(dmap, p); }

static size_t fallbacks;

static inline int ours(const void *p) {
    return ((uintptr_t)p >> ADDRESS_BITS) == 0 && bit_get(map, p);
}

static inline int routed(size_t n) { return n - lo <= span && ((n + 7) & 8) && !priv.starved; }

static inline pool *pool_of(const void *b) {
    return (pool *)((uintptr_t)b & ~(uintptr_t)(POOL - 1));
}

/* One of our pooled blocks (not detached) in a shared chunk. */
static inline int in_shared(const void *b) { return pool_of(b)->owner->h->shared; }

/* Whether p is one of our blocks in a shared chunk (what share() makes). */
static inline int shared_block(const void *p) { return ours(p) && !detached(p) && in_shared(p); }

static void bit_set(uint64_t *bits, const char *base, int on) {
    uintptr_t a = (uintptr_t)base;
    if (on)
        bits[a >> 26] |= (uint64_t)1 << ((a >> 20) & 63);
    else
        bits[a >> 26] &= ~((uint64_t)1 << ((a >> 20) & 63));
}

static void list_remove_chunk(chunk *c) {
    if (c->prev)
        c->prev->next = c->next;
    else
        c->h->roomy = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void list_push_chunk(chunk *c) {
    c->prev = NULL;
    c->next = c->h->roomy;
    if (c->next)
        c->next->prev = c;
    c->h->roomy = c;
}

/* n bytes (a multiple of CHUNK) of fresh memory at a CHUNK-aligned address below
 * 2^ADDRESS_BITS, or NULL */
static char *aligned_mmap(size_t n, int flags) {
    char *p = mmap(NULL, n + CHUNK, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    char *start = (char *)(((uintptr_t)p + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
    if (start > p)
        munmap(p, (size_t)(start - p));
    char *end = start + n;
    if (end < p + n + CHUNK)
        munmap(end, (size_t)(p + n + CHUNK - end));
    if ((uintptr_t)(start + n - 1) >> ADDRESS_BITS) {
        munmap(start, n);
        return NULL;
    }
    return start;
}

/* A chunk of a reserved range (a released one first), or NULL (then the caller maps one). */
static char *range_chunk(void) {
    if (range_failed)
        return NULL;
    if (nranges == 0 || range_used == RANGE) {
        if (nranges == MAX_RANGES)
            return NULL;
        char *start = aligned_mmap(RANGE, MAP_SHARED | MAP_NORESERVE);
        if (start == NULL) {
            range_failed = 1;
            return NULL;
        }
        ranges[nranges++] = start;
        range_used = 0;
    }
    char *mem = ranges[nranges - 1] + range_used;
    range_used += CHUNK;
    return mem;
}

static chunk *chunk_new(heap *h) {
    chunk *c;
    char *mem = NULL;
    if (h->shared && range_spare != NULL) { /* a released chunk of a range: reuse it */
        c = range_spare;
        range_spare = c->all_next;
        mem = c->base;
        *c = (chunk){.in_range = 1};
    } else if ((c = PyMem_RawCalloc(1, sizeof(chunk))) == NULL) {
        return NULL;
    } else if (h->shared && (mem = range_chunk()) != NULL) {
        c->in_range = 1;
    }
    c->h = h;
    if (via_arenas && !h->shared) {
        mem = arenas.alloc(arenas.ctx, CHUNK);
        if (mem != NULL && ((uintptr_t)mem & (CHUNK - 1))) {
            arenas.free(arenas.ctx, mem, CHUNK);
            mem = NULL;
        }
        c->from_arena = mem != NULL;
    }
    if (mem != NULL && ((uintptr_t)mem >> ADDRESS_BITS)) {
        arenas.free(arenas.ctx, mem, CHUNK);
        mem = NULL;
    }
    if (mem == NULL) {
        c->from_arena = 0;
        mem = aligned_mmap(CHUNK, h->shared ? MAP_SHARED : MAP_PRIVATE);
    }
    if (mem == NULL) {
        PyMem_RawFree(c);
        h->starved = 1;
        return NULL;
    }
    c->base = mem;
    c->nempty = POOLS;
    bit_set(map, mem, 1);
    list_push_chunk(c);
    if (h->shared && !c->in_range) {
        c->all_next = shared_all;
        if (shared_all)
            shared_all->all_prev = c;
        shared_all = c;
    }
    h->chunks_live++;
    return c;
}

static void chunk_release(chunk *c) {
    heap *h = c->h;
    list_remove_chunk(c);
    bit_set(map, c->base, 0);
    if (c->in_range) { /* its pages go back; the chunk waits for reuse */
        madvise(c->base, CHUNK, MADV_REMOVE);
        c->all_next = range_spare;
        range_spare = c;
    } else {
        if (h->shared) {
            if (c->all_prev)
                c->all_prev->all_next = c->all_next;
            else
                shared_all = c->all_next;
            if (c->all_next)
                c->all_next->all_prev = c->all_prev;
        }
        if (c->from_arena)
            arenas.free(arenas.ctx, c->base, CHUNK);
        else
            munmap(c->base, CHUNK); /* a shared one stays readable in a child that maps it */
        PyMem_RawFree(c);
    }
    h->chunks_live--;
    h->chunks_released++;
    h->starved = 0;
}

/* p at the head of the pool list *head (a heap's usable[k], or parked[k]). */
static void push_pool(pool **head, pool *p) {
    p->prev = NULL;
    p->next = *head;
    if (*head)
        (*head)->prev = p;
    *head = p;
}

static void push_usable(heap *h, pool *p) { push_pool(&h->usable[p->cls], p); }

static void remove_usable(heap *h, pool *p) {
    if (p->prev)
        p->prev->next = p->next;
    else if (h->usable[p->cls] == p)
        h->usable[p->cls] = p->next;
    else if (h->shared && parked[p->cls] == p) /* (emptied by a release while parked) */
        parked[p->cls] = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
}

/* A fresh pool of class k (blocks of size bytes), at the head of h->usable[k]; NULL when
 * no chunk can be had. */
static pool *pool_new(heap *h, unsigned k, uint32_t size) {
    /* (a starved shared heap still fills the chunks it has; the private one routes nothing) */
    chunk *c = h->roomy ? h->roomy : (h->shared && h->starved) ? NULL : chunk_new(h);
    if (c == NULL)
        return NULL;
    pool *p;
    if (c->empty != NULL) {
        p = c->empty;
        c->empty = p->next;
    } else {
        p = (pool *)(c->base + (size_t)c->fresh++ * POOL);
    }
    if (--c->nempty == 0)
        list_remove_chunk(c);
    p->owner = c;
    p->freelist = NULL;
    p->size = size;
    p->cls = k;
    p->gen = generation;
    p->bump = (uint32_t)HEADER;
    p->nused = 0;
    p->cap = (uint32_t)((POOL - HEADER) / p->size);
    push_usable(h, p);
    h->pools_live++;
    return p;
}

static void pool_release(heap *h, pool *p) {
    remove_usable(h, p);
    h->pools_live--;
    chunk *c = p->owner;
    p->next = c->empty;
    c->empty = p;
    if (c->nempty++ == 0)
        list_push_chunk(c);
    /* all empty, and another chunk has room: give this one back */
    if (c->nempty == POOLS && (c->next != NULL || c->prev != NULL))
        chunk_release(c);
}

/* A block of class k of heap h (size bytes: 16k + 8 in priv, 8k in shr); NULL if none. */
static void *class_alloc(heap *h, unsigned k, uint32_t size) {
    pool *p = h->usable[k];
    if (p == NULL && (p = pool_new(h, k, size)) == NULL)
        return NULL;
    void *b = p->freelist;
    if (b != NULL) {
        p->freelist = *(void **)b;
    } else {
        b = (char *)p + p->bump;
        p->bump += p->size;
    }
    if (++p->nused == p->cap)
        remove_usable(h, p);
    h->blocks_live++;
    h->bytes_live += p->size;
    h->odd_blocks += (p->size >> 3) & 1;
    return b;
}

static void block_free(pool *p, void *b) {
    heap *h = p->owner->h;
    *(void **)b = p->freelist;
    p->freelist = b;
    h->blocks_live--;
    h->bytes_live -= p->size;
    h->odd_blocks -= (p->size >> 3) & 1;
    if (p->nused-- == p->cap) {
        /* released while a child runs: a pool of its fork waits with the parked ones,
         * so values stored meanwhile come from fresh pools (and are freed at once) */
        push_pool(h->shared && p->gen <= newest_live ? &parked[p->cls] : &h->usable[p->cls], p);
    }
    if (p->nused == 0)
        pool_release(h, p);
}

/* Put b in the quarantine batch of the newest live seal.  It cannot fail: without
 * memory for a new batch, the spare one, or else the newest batch, takes b (its tag then
 * rises: it waits for more children, never fewer). */
static void quarantine(void *b, uint32_t size) {
    qbatch *q = qtail;
    /* A batch tagged above every live seal waits for exactly the children one tagged
     * newest_live does (all live seals are <= newest_live, later ones > both): reuse it. */
    if (q != NULL && q->tag > newest_live)
        q->tag = newest_live;
    if (q == NULL || q->tag != newest_live) {
        qbatch *fresh = PyMem_RawMalloc(sizeof(qbatch));
        if (fresh == NULL && !qspare_used) {
            fresh = &qspare;
            qspare_used = 1;
        }
        if (fresh != NULL) {
            *fresh = (qbatch){.tag = newest_live};
            if (qtail != NULL)
                qtail->next = fresh;
            else
                qhead = fresh;
            qtail = q = fresh;
        } else { /* (q != NULL: the spare is in the list) */
            q->tag = newest_live; /* later: waits for more children, never fewer */
        }
    }
    *(void **)b = q->head;
    q->head = b;
    q->count++;
    q->bytes += size;
    quarantined++;
    quarantined_bytes += size;
}

static void class_free(void *b) {
    pool *p = pool_of(b);
    if (p->owner->h->shared) {
        if (forked_child) /* the master's memory: a child never writes there */
            return;
        if (p->gen <= newest_live) { /* a live child may read it */
            quarantine(b, p->size);
            return;
        }
    }
    block_free(p, b);
}

static dchunk *dchunk_new(size_t need) {
    size_t size = need <= CHUNK - DHEADER ? CHUNK : (need + DHEADER + CHUNK - 1) & ~(CHUNK - 1);
    if (size == CHUNK && dspare != NULL) {
        dchunk *c = dspare;
        dspare = *(void **)dspare;
        dspare_count--;
        c->live = 0;
        c->bump = DHEADER;
        c->size = size;
        return c;
    }
    char *mem = aligned_mmap(size, MAP_PRIVATE);
    if (mem == NULL || madvise(mem, size, MADV_WIPEONFORK) != 0) {
        if (mem != NULL)
            munmap(mem, size);
        priv.starved = 1;
        return NULL;
    }
    bit_set(map, mem, 1);
    bit_set(dmap, mem, 1);
    dchunk *c = (dchunk *)mem;
    c->live = 0;
    c->bump = DHEADER;
    c->size = size;
    dchunks_live++;
    return c;
}

static void dchunk_release(dchunk *c) {
    if (c->size == CHUNK && dspare_count < DSPARE_MAX) { /* stays mapped, and ours */
        *(void **)c = dspare;
        dspare = c;
        dspare_count++;
        return;
    }
    bit_set(map, (char *)c, 0);
    bit_set(dmap, (char *)c, 0);
    munmap(c, c->size);
    dchunks_live--;
    priv.starved = 0;
}

/* n bytes (a multiple of 8) of detached memory, after its 8-byte size; NULL if none */
static char *detached_alloc(size_t n) {
    size_t need = n + 8;
    dchunk *c = dcur;
    if (c == NULL || c->bump + need > c->size) {
        if ((c = dchunk_new(need)) == NULL)
            return NULL;
        if (c->size == CHUNK) { /* the new chunk being filled; the old one goes when empty */
            if (dcur != NULL && dcur->live == 0)
                dchunk_release(dcur);
            dcur = c;
        }
    }
    char *b = (char *)c + c->bump;
    c->bump += need;
    c->live++;
    *(size_t *)b = n;
    dobjects_live++;
    dbytes_live += n;
    return b + 8;
}

static void detached_free(void *b) {
    if (forked_child) /* the chunk reads as zeros here: abandoned, see at_fork_child */
        return;
    dchunk *c = (dchunk *)((uintptr_t)b & ~(uintptr_t)(CHUNK - 1));
    dobjects_live--;
    dbytes_live -= ((size_t *)b)[-1];
    if (--c->live == 0) {
        if (c == dcur)
            c->bump = DHEADER; /* refill it from the start */
        else
            dchunk_release(c);
    }
}

static void *t_malloc(void *ctx, size_t n) {
    (void)ctx;
    if (routed(n)) {
        unsigned k = (unsigned)((n + 7) >> 4);
        void *b = class_alloc(&priv, k, 16 * k + 8);
        if (b != NULL)
            return b;
        fallbacks++;
    }
    return prev.malloc(prev.ctx, n);
}

static void *t_calloc(void *ctx, size_t nelem, size_t elsize) {
    (void)ctx;
    if (elsize != 0 && nelem > SIZE_MAX / elsize)
        return NULL;
    size_t n = nelem * elsize;
    if (routed(n)) {
        unsigned k = (unsigned)((n + 7) >> 4);
        void *b = class_alloc(&priv, k, 16 * k + 8);
        if (b != NULL)
            return memset(b, 0, n);
        fallbacks++;
    }
    return prev.calloc(prev.ctx, nelem, elsize);
}

/* The usable size of one of our blocks, and freeing it (pooled or detached). */
static size_t our_size(void *ptr) {
    if (detached(ptr))
        return ((size_t *)ptr)[-1];
    return pool_of(ptr)->size;
}

static void our_free(void *ptr) {
    if (detached(ptr))
        detached_free(ptr);
    else
        class_free(ptr);
}

/* Move one of our blocks to a block of n bytes from alloc (the OBJ or the MEM domain). */
static void *our_move(void *ptr, size_t n, void *(*alloc)(void *, size_t), void *ctx) {
    size_t had = our_size(ptr);
    void *q = alloc(ctx, n);
    if (q == NULL)
        return NULL;
    memcpy(q, ptr, n < had ? n : had);
    our_free(ptr);
    return q;
}

static void *t_realloc(void *ctx, void *ptr, size_t n) {
    if (!ours(ptr))
        return prev.realloc(prev.ctx, ptr, n);
    if (!detached(ptr) && !in_shared(ptr) && routed(n) && ((n + 7) >> 4) == (our_size(ptr) >> 4))
        return ptr; /* the same class */
    return our_move(ptr, n, t_malloc, ctx);
}

/* Free ptr: ours back to its pool or chunk, anything else to ``next`` (the allocator
 * the hook wraps). */
static inline void free_via(const PyMemAllocatorEx *next, void *ptr) {
    if (ours(ptr))
        our_free(ptr);
    else
        next->free(next->ctx, ptr);
}

static void t_free(void *ctx, void *ptr) {
    (void)ctx;
    free_via(&prev, ptr);
}

/* The MEM domain (PyMem_Malloc ...) is pymalloc too on a stock build, so an extension
 * that frees an object's memory with PyMem_Free (an API violation that works there)
 * would hand our block to pymalloc, which passes it to glibc's free(): abort.  Its free
 * and realloc take our blocks back; its malloc and calloc are the previous allocator's
 * own functions (install()), with no hop through here. */

static void *m_realloc(void *ctx, void *ptr, size_t n) {
    (void)ctx;
    if (ours(ptr))
        return our_move(ptr, n, prev_mem.malloc, prev_mem.ctx);
    return prev_mem.realloc(prev_mem.ctx, ptr, n);
}

static void m_free(void *ctx, void *ptr) {
    (void)ctx;
    free_via(&prev_mem, ptr);
}

/* A forked child gets the detached chunks zeroed (MADV_WIPEONFORK): it leaves them be. */
static void at_fork_child(void) {
    forked_child = 1;
    /* The master's values: a write from here would land in the master (a reference
     * count, say). Read-only, it is a SIGSEGV of this child (a failed sync) instead. */
    for (unsigned i = 0; i < nranges; i++)
        if (mprotect(ranges[i], RANGE, PROT_READ) != 0)
            protect_failures++;
    for (chunk *c = shared_all; c != NULL; c = c->all_next)
        if (mprotect(c->base, CHUNK, PROT_READ) != 0)
            protect_failures++;
    /* (and no core dump of the master's memory should the backstop fire) */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    dcur = NULL;
    dspare = NULL;
    dspare_count = 0;
}

static PyObject *install(PyObject *self, PyObject *args) {
    (void)self;
    Py_ssize_t low, high, dmin = 512;
    int arenas_too, share_too = 0;
    if (!PyArg_ParseTuple(args, "nnp|np", &low, &high, &arenas_too, &dmin, &share_too))
        return NULL;
    if (installed) {
        PyErr_SetString(PyExc_RuntimeError, "tightalloc is already installed");
        return NULL;
    }
    if (low < 1 || high < low || high > 16 * (NCLASSES - 1) + 8 || dmin < 1) {
        PyErr_Format(PyExc_ValueError,
                     "sizes must satisfy 1 <= lo <= hi <= %d and detach_min >= 1",
                     16 * (NCLASSES - 1) + 8);
        return NULL;
    }
    void *m = mmap(NULL, MAP_WORDS * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return PyErr_SetFromErrno(PyExc_OSError);
    void *dm = mmap(NULL, MAP_WORDS * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (dm == MAP_FAILED) {
        munmap(m, MAP_WORDS * sizeof(uint64_t));
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    map = m;
    dmap = dm;
    lo = (size_t)low;
    span = (size_t)(high - low);
    via_arenas = arenas_too;
    detach_min = dmin;
    if (pthread_atfork(NULL, NULL, at_fork_child) != 0) {
        PyErr_SetString(PyExc_OSError, "pthread_atfork failed");
        return NULL;
    }
    PyObject_GetArenaAllocator(&arenas);
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &prev);
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &prev_mem);
    PyMemAllocatorEx mine = {NULL, t_malloc, t_calloc, t_realloc, t_free};
    PyMemAllocatorEx mine_mem = {prev_mem.ctx, prev_mem.malloc, prev_mem.calloc, m_realloc, m_free};
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &mine);
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &mine_mem);
    installed = 1;
    sharing = share_too;
    Py_RETURN_NONE;
}

static PyObject *stats(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    if (!installed)
        return Py_BuildValue("{s:O}", "installed", Py_False);
    PyObject *d = Py_BuildValue(
        "{s:O,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n}", "installed", Py_True, "lo",
        (Py_ssize_t)lo, "hi", (Py_ssize_t)(lo + span), "blocks", (Py_ssize_t)priv.blocks_live,
        "block_bytes", (Py_ssize_t)priv.bytes_live, "saved_bytes", (Py_ssize_t)(8 * priv.odd_blocks),
        "pools", (Py_ssize_t)priv.pools_live, "chunks", (Py_ssize_t)priv.chunks_live,
        "released_chunks", (Py_ssize_t)priv.chunks_released, "fallbacks", (Py_ssize_t)fallbacks,
        "detached_objects", (Py_ssize_t)dobjects_live, "detached_bytes", (Py_ssize_t)dbytes_live,
        "detached_chunks", (Py_ssize_t)dchunks_live, "detach_fallbacks",
        (Py_ssize_t)detach_fallbacks, "spare_chunks", (Py_ssize_t)dspare_count, "starved",
        (Py_ssize_t)priv.starved, "forked_child", (Py_ssize_t)forked_child);
    if (d == NULL)
        return NULL;
    PyObject *more = Py_BuildValue(
        "{s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n}", "sharing", (Py_ssize_t)sharing,
        "shared_objects", (Py_ssize_t)(shr.blocks_live - quarantined), "shared_bytes",
        (Py_ssize_t)(shr.bytes_live - quarantined_bytes), "shared_saved_bytes",
        (Py_ssize_t)(8 * shr.odd_blocks), "shared_chunks", (Py_ssize_t)shr.chunks_live,
        "shared_released_chunks", (Py_ssize_t)shr.chunks_released, "share_fallbacks",
        (Py_ssize_t)share_fallbacks, "quarantined", (Py_ssize_t)quarantined,
        "quarantined_bytes", (Py_ssize_t)quarantined_bytes, "readers", (Py_ssize_t)readers,
        "shared_starved", (Py_ssize_t)shr.starved, "protect_failures",
        (Py_ssize_t)protect_failures, "shared_ranges", (Py_ssize_t)nranges);
    if (more == NULL || PyDict_Update(d, more) < 0) {
        Py_XDECREF(more);
        Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(more);
    return d;
}

/* The block a copy of bytes object obj takes: its header, bytes and NUL, rounded to 8. */
static size_t bytes_block(PyObject *obj) {
    return (offsetof(PyBytesObject, ob_sval) + (size_t)PyBytes_GET_SIZE(obj) + 1 + 7) & ~(size_t)7;
}

/* Make block (bytes_block(obj) bytes) a copy of obj: the same bytes, the cached hash if
 * computed; a new reference. */
static PyObject *copy_bytes_to(void *block, PyObject *obj) {
    PyBytesObject *op = block;
    Py_ssize_t n = PyBytes_GET_SIZE(obj);
    PyObject_InitVar((PyVarObject *)op, &PyBytes_Type, n);
    _Py_COMP_DIAG_PUSH
    _Py_COMP_DIAG_IGNORE_DEPR_DECLS
    op->ob_shash = ((PyBytesObject *)obj)->ob_shash;
    _Py_COMP_DIAG_POP
    memcpy(op->ob_sval, PyBytes_AS_STRING(obj), (size_t)n + 1);
    return (PyObject *)op;
}

/* A copy of bytes object obj in a shared chunk (see the top of the file), or obj itself:
 * sharing off, in a forked child, not exact bytes, 0 or 1 byte long (CPython's cached
 * singletons), bigger than SHARE_MAX with its header, already shared, or no memory. */
static PyObject *share(PyObject *self, PyObject *obj) {
    (void)self;
    if (!sharing || forked_child || !PyBytes_CheckExact(obj))
        goto same;
    size_t total = bytes_block(obj);
    if (PyBytes_GET_SIZE(obj) < 2 || total > SHARE_MAX || shared_block(obj))
        goto same;
    void *block = class_alloc(&shr, (unsigned)(total >> 3), (uint32_t)total);
    if (block == NULL) {
        share_fallbacks++;
        goto same;
    }
    return copy_bytes_to(block, obj);
same:
    Py_INCREF(obj);
    return obj;
}

static PyObject *is_shared(PyObject *self, PyObject *obj) {
    (void)self;
    if (!installed)
        Py_RETURN_FALSE;
    return PyBool_FromLong(shared_block(obj));
}

/* Move the pools of list *from onto the front of list *to: O(1) when *to is empty (a
 * first reader parks everything so), else a walk of *from (callers pass the short one). */
static void splice(pool **from, pool **to) {
    pool *head = *from;
    if (head == NULL)
        return;
    if (*to == NULL) {
        *to = head;
        *from = NULL;
        return;
    }
    pool *tail = head;
    while (tail->next != NULL)
        tail = tail->next;
    tail->next = *to;
    (*to)->prev = tail;
    *to = head;
    *from = NULL;
}

static PyObject *reader_started(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    if (readers == MAX_READERS) {
        PyErr_SetString(PyExc_RuntimeError, "too many children reading shared values at once");
        return NULL;
    }
    uint32_t seal = generation++; /* every shared pool so far holds what the child may read */
    live_seals[readers++] = seal;
    newest_live = seal;
    for (unsigned k = 0; k < SCLASSES; k++)
        splice(&shr.usable[k], &parked[k]);
    shr.starved = 0; /* a sync is a good moment to try for a chunk again */
    return PyLong_FromUnsignedLong(seal);
}

static PyObject *reader_ended(PyObject *self, PyObject *arg) {
    (void)self;
    unsigned long seal = PyLong_AsUnsignedLong(arg);
    if (seal == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    long i = 0;
    while (i < readers && live_seals[i] != seal)
        i++;
    if (i == readers) {
        PyErr_Format(PyExc_RuntimeError, "reader_ended(%lu) without reader_started()", seal);
        return NULL;
    }
    live_seals[i] = live_seals[--readers];
    newest_live = 0;
    for (i = 0; i < readers; i++)
        if (live_seals[i] > newest_live)
            newest_live = live_seals[i];
    if (readers == 0)
        for (unsigned k = 0; k < SCLASSES; k++) { /* (the fresh pools are the short list) */
            splice(&shr.usable[k], &parked[k]);
            shr.usable[k] = parked[k];
            parked[k] = NULL;
        }
    return PyLong_FromLong(readers);
}

/* Whether no live child can read what batch q holds: every child whose seal is at most
 * q's tag is gone. */
static int releasable(const qbatch *q) {
    for (long i = 0; i < readers; i++)
        if (live_seals[i] <= q->tag)
            return 0;
    return 1;
}

/* Free up to limit quarantined blocks that no live child can read; how many such blocks
 * are left (0 when the rest, if any, waits for a child). */
static PyObject *release_quarantined(PyObject *self, PyObject *arg) {
    (void)self;
    Py_ssize_t limit = PyLong_AsSsize_t(arg);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    size_t left = 0;
    qbatch *prev = NULL, *q = qhead;
    while (q != NULL) {
        qbatch *next = q->next;
        if (!releasable(q)) {
            prev = q;
            q = next;
            continue;
        }
        while (q->head != NULL && limit > 0) {
            void *b = q->head;
            q->head = *(void **)b;
            pool *p = pool_of(b);
            q->count--;
            q->bytes -= p->size;
            quarantined--;
            quarantined_bytes -= p->size;
            block_free(p, b);
            limit--;
        }
        if (q->head != NULL) {
            left += q->count;
            prev = q;
        } else { /* emptied: unlink it */
            if (prev != NULL)
                prev->next = next;
            else
                qhead = next;
            if (qtail == q)
                qtail = prev;
            if (q == &qspare)
                qspare_used = 0;
            else
                PyMem_RawFree(q);
        }
        q = next;
    }
    return PyLong_FromSize_t(left);
}

/* A copy of a bytes object in detached memory (MADV_WIPEONFORK), or the object itself
 * (not installed, not exact bytes, shorter than detach_min, already detached, or no
 * memory).  Small records stay: copying one costs ~30 ns on every write and on every
 * record a replica applies (a few % of a SET), for little of what fork() copies; a
 * large one (an MSET, a big value) costs less per byte than the write that made it. */
static PyObject *detach_one(PyObject *obj) {
    if (!installed || forked_child || priv.starved || !PyBytes_CheckExact(obj) ||
        PyBytes_GET_SIZE(obj) < detach_min ||
        (ours(obj) && detached(obj))) {
        Py_INCREF(obj);
        return obj;
    }
    char *block = detached_alloc(bytes_block(obj));
    if (block == NULL) {
        detach_fallbacks++;
        Py_INCREF(obj);
        return obj;
    }
    return copy_bytes_to(block, obj);
}

static PyObject *detach(PyObject *self, PyObject *obj) {
    (void)self;
    return detach_one(obj);
}

static PyObject *detach_many(PyObject *self, PyObject *seq) {
    (void)self;
    PyObject *items = PySequence_Fast(seq, "detach_many() takes a list or a tuple");
    if (items == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    PyObject *out = PyList_New(n);
    if (out != NULL) {
        PyObject **src = PySequence_Fast_ITEMS(items);
        for (Py_ssize_t i = 0; i < n; i++)
            PyList_SET_ITEM(out, i, detach_one(src[i]));
    }
    Py_DECREF(items);
    return out;
}

static PyObject *owns(PyObject *self, PyObject *obj) {
    (void)self;
    if (!installed)
        Py_RETURN_FALSE;
    return PyBool_FromLong(ours(obj));
}

static PyObject *is_detached(PyObject *self, PyObject *obj) {
    (void)self;
    if (!installed)
        Py_RETURN_FALSE;
    return PyBool_FromLong(ours(obj) && detached(obj));
}

static PyMethodDef methods[] = {
    {"detach", detach, METH_O,
     "detach(b) -> a copy of bytes b in memory a forked child gets zeroed (MADV_WIPEONFORK); "
     "b itself when not installed."},
    {"detach_many", detach_many, METH_O, "detach_many(records) -> [detach(r) for r in records]."},
    {"is_detached", is_detached, METH_O, "is_detached(obj) -> whether detach() made obj."},
    {"install", install, METH_VARARGS,
     "install(lo, hi, via_arenas, detach_min=512, sharing=False): serve object requests of "
     "lo..hi bytes that pymalloc would round up by more than 8 from 8-byte size classes; "
     "detach() copies bytes of at least detach_min bytes; share() copies when sharing."},
    {"stats", stats, METH_NOARGS, "stats() -> dict: the allocator's counters."},
    {"share", share, METH_O,
     "share(b) -> a copy of bytes b in memory a forked child shares (MAP_SHARED), or b itself "
     "when sharing is off or b does not fit."},
    {"is_shared", is_shared, METH_O, "is_shared(obj) -> whether share() made obj."},
    {"reader_started", reader_started, METH_NOARGS,
     "reader_started() -> seal: a child that reads shared blocks is about to be forked."},
    {"reader_ended", reader_ended, METH_O,
     "reader_ended(seal) -> readers left: the child reader_started() said seal of is gone."},
    {"release_quarantined", release_quarantined, METH_O,
     "release_quarantined(limit) -> left: free up to limit shared blocks freed while a child "
     "could read them and that no live child can read now; how many such are left."},
    {"owns", owns, METH_O, "owns(obj) -> whether obj's memory came from these classes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tightalloc",
    "8-byte size classes for mid-sized objects (C twin of synap/tightalloc.py).", -1, methods,
};

PyMODINIT_FUNC PyInit_tightalloc(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "BUILT", 1) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
