/*
 * hetmem's userfaultfd fault service: HMM's "special CPU entry", in user space.
 *
 * A region in userfaultfd mode is one private anonymous mapping, the view: what programs touch
 * (region.segment(), region.address()) and what hetmem itself reads. It is registered with
 * userfaultfd for MISSING and write-protect (WP) faults and mirrors the logical page table's host
 * column, as a device page table mirrors its own:
 *   - a page the host holds is mapped, or missing and then it reads as zeros (a touch faults and
 *     the service maps the zero page, or a zeroed page for a write);
 *   - a page only devices hold is missing (zapped with MADV_DONTNEED): a touch faults and the
 *     service copies the granule around it home from the device frames with UFFDIO_COPY;
 *   - a read-only host copy (read duplication, protection) is mapped write-protected: a write
 *     faults, and the service makes the host the page's only writer before letting it go on;
 *   - a page being copied off the host (LEAVING) stays mapped, write-protected: readers go on
 *     undisturbed, a writer faults and takes the page back (the copy being made is then dropped).
 * A page only ever becomes present here, by an ioctl made under its page lock (UFFDIO_COPY,
 * UFFDIO_ZEROPAGE), never by a store: so data can never land in a page whose state word says it
 * is elsewhere, and hetmem's own Java code only reads the view (a missing page it reads faults and
 * is filled by the service, which never waits for Java).
 *
 * Why anonymous memory (an earlier version used a memfd mapped twice, the second mapping being
 * hetmem's way in without faults): a fault on shared memory also costs the kernel a page-cache
 * insertion, 1.2-1.35x the anonymous round trip here and 1.6-2.7x on slow days, so the service
 * could never come near the bare anonymous round trip; now it does the same kernel work plus
 * one 4 KiB copy.
 *
 * Every page has a 64-bit state word in a table shared with Java (off-heap, NORESERVE, so only
 * touched parts cost memory); its bit layout is drawn once, in hetmem_uffd_layout.h.
 *
 * WHY THIS NEVER HANGS THE JVM (the argument the design rests on)
 * A Java thread that faults on the view from Java code is "in Java" while blocked in the kernel,
 * so it holds up every safepoint until its fault is resolved. Resolution therefore must not wait,
 * directly or indirectly, for anything that itself waits for a safepoint. Here:
 *   1. The service is a pthread created in C. It never attaches to the JVM and never runs Java
 *      code, so it never stops at a safepoint.
 *   2. To resolve a fault it needs only: the region table lock (svc->lock), page locks, memcpy by
 *      the kernel inside UFFDIO_COPY, and userfaultfd ioctls.
 *   3. svc->lock is taken only inside functions of this file, by the service or by a Java thread
 *      inside a downcall (which the JVM treats as safepoint-safe: the thread keeps running native
 *      code through any safepoint and blocks, if at all, only when it returns to Java). Each such
 *      function releases it before returning. So a holder is always running C code of this file.
 *   4. Page locks likewise are taken and released within one function of this file; none is held
 *      across a return to Java, and no Java thread holds one while it touches the view (Java code
 *      touches the view only outside these functions). While holding them, functions only call
 *      madvise or userfaultfd ioctls, and take further page locks in ascending address order
 *      (svc->lock, when needed, is taken before any page lock). They never load or store the view
 *      themselves, and the memory UFFDIO_COPY reads (device frames, a zero buffer) is never
 *      registered with userfaultfd, so none of them can fault into the service.
 *   5. The kernel's mmap lock: a thread blocked in a userfaultfd fault has released it; the
 *      ioctls and madvise calls take it for reading after page locks, always in that order.
 * Hence every lock the service can wait for is held by a thread running C code that finishes in
 * bounded time without waiting for the JVM: fault resolution never waits for a safepoint. The
 * Java side learns afterwards (STOLEN bits and per-block flags it collects under its own locks).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hetmem_uffd_layout.h"

/* newer than some distributions' headers */
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#define MADV_COLLAPSE_ 25 /* MADV_COLLAPSE, Linux 6.1: older headers lack it, older kernels refuse it */
#define PAGE 4096ULL
#define ALIGN (2ULL << 20)
/* the zero buffer UFFDIO_COPY fills zeroed pages from: never written, so it costs no memory */
#define ZEROS_BYTES (2ULL << 20)


/* why hm_service_open failed (negative return values) */
#define E_SYSCALL -1 /* userfaultfd(2) and /dev/userfaultfd both refused: errno tells why */
#define E_API -2     /* UFFDIO_API refused */
#define E_FEATURES -3 /* the kernel cannot register anonymous memory for MISSING and WP faults */
#define E_THREAD -4

/* how a run of pages is installed in the view */
#define H_COPY 0       /* from device frames */
#define H_ZERO_READ 1  /* the zero page (a later write takes a private page, as any first write) */
#define H_ZERO_WRITE 2 /* a zeroed page, writable */
#define H_ZERO_RO 3    /* a zeroed page, write-protected */
#define H_COPY_RO 4    /* from device frames, write-protected */

struct hm_service;

struct hm_region {
    uint64_t view;
    uint64_t length; /* whole pages */
    uint64_t pages;
    uint64_t *state;
    uint8_t *flags; /* one byte per 2 MiB block: some page has STOLEN set; then one for the region */
    uint64_t flags_bytes;
    uint32_t granule_pages;
    /* 1 + log2 of each page's granule in pages where advice set one (Advice.granularity), 0 where
       none did (the page has granule_pages); NULL until the first advice. A lazily backed mapping:
       only the advised pages' bytes are ever written. Published by a release store; a byte changes
       while a fault reads it: the fault takes the old granule or the new */
    uint8_t *granule_shift;
    int dead;
    struct hm_service *svc;
    /* kernels holding a page beyond the 31 its BUSY field counts, one count per page; allocated at
       the first page that needs it (published by CAS), each count changed under its page's lock */
    uint32_t *busy_more;
    /* set if busy_more could not be allocated: counts at 31 then stay (the page is never taken as a
       neighbour, and never taken in while BUSY: safe, but a page stolen there waits for good) */
    int busy_sticky;
};

struct hm_service {
    int uffd;
    int stopfd;
    pthread_t thread;
    pthread_mutex_t lock; /* lock L15 (docs/design.md, lock table): guards regions[]; see the argument above */
    struct hm_region *regions[MAX_REGIONS];
    int slots; /* regions[] beyond this are all empty: what a fault's lookup scans */
    const char *zeros;
    uint64_t counters[C_COUNT];
    /* odd from just before the service reads fault messages until it has served them all (or read
       none): what hm_busy waits out, see SERVED_BEFORE_BUSY there */
    _Alignas(64) uint64_t batch; /* its own cache line: hm_busy polls it while the service counts */
    _Alignas(64) uint64_t hold_ns; /* tests only (hm_test_hold): the service sleeps this long after each read */
    uint64_t held; /* tests only: messages read while hold_ns was set */
    /* tests only (hm_test_fail_fill): fills fail with fail_errno once this many more pages have been
       filled, fail_times of them in a row; -1: never */
    _Alignas(64) int64_t fail_after;
    int64_t fail_times;
    int fail_errno;
    int fail_service_only; /* tests only: only the service thread's own fills (a fault's) fail */
    /* faults whose own page could not be installed since the last fault at failing_addr was served:
       the service pauses before its next read (see FAILING_PAUSE_NS); the service thread's alone */
    uint32_t failing;
    uint64_t failing_addr;
};

static inline void bump(struct hm_service *s, int which, uint64_t n) {
    __atomic_fetch_add(&s->counters[which], n, __ATOMIC_RELAXED);
}

/* ---- page locks ---------------------------------------------------------------------------- */

/* lock L16 (docs/design.md, lock table): the page lock, the LOCK bit of the state word */
static uint64_t lock_page(uint64_t *w) {
    int spins = 0;
    for (;;) {
        uint64_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
        if (!(v & ST_LOCK)
                && __atomic_compare_exchange_n(w, &v, v | ST_LOCK, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            return v;
        }
        /* holders run bounded C code (see above): spin briefly, then let them run */
        if (++spins > 64) {
            sched_yield();
        }
    }
}

static inline void unlock_page(uint64_t *w, uint64_t v) {
    __atomic_store_n(w, v & ~ST_LOCK, __ATOMIC_RELEASE);
}

static void lock_range(struct hm_region *r, uint64_t first, uint64_t count, uint64_t *old) {
    for (uint64_t i = 0; i < count; i++) {
        old[i] = lock_page(&r->state[first + i]);
    }
}

static void unlock_range(struct hm_region *r, uint64_t first, uint64_t count, const uint64_t *now) {
    for (uint64_t i = 0; i < count; i++) {
        unlock_page(&r->state[first + i], now[i]);
    }
}

/* The block's flag, then the region's summary flag (the byte after the last block's). */
static inline void mark_stolen(struct hm_region *r, uint64_t page) {
    __atomic_store_n(&r->flags[page >> 9], 1, __ATOMIC_RELEASE);
    __atomic_store_n(&r->flags[(r->pages + 511) / 512], 1, __ATOMIC_RELEASE);
}

static inline uint64_t steal(struct hm_region *r, uint64_t page, uint64_t v, uint64_t nv) {
    if (!(v & ST_STOLEN)) {
        bump(r->svc, C_STOLEN, 1);
    }
    mark_stolen(r, page);
    return nv | ST_STOLEN;
}

/*
 * The word of a page the host now holds alone, writable, taken on the service's own account (a
 * fault brought it home, or a write took it back from a migration); mapped: ST_MAPPED or 0.
 */
static inline uint64_t host_takes(struct hm_region *r, uint64_t page, uint64_t v, uint64_t mapped) {
    return steal(r, page, v, (v & (ST_BUSY | ST_LOCK)) | K_HOST | ST_HELD | mapped);
}

/* ---- the view's mappings (callers hold the pages' locks) ------------------------------------ */

static void wake(struct hm_service *s, uint64_t addr) {
    struct uffdio_range w = {addr & ~(PAGE - 1), PAGE};
    ioctl(s->uffd, UFFDIO_WAKE, &w);
}

static int write_protect(struct hm_region *r, uint64_t first, uint64_t count, int on) {
    if (count == 0) {
        return 0;
    }
    struct uffdio_writeprotect wp;
    wp.range.start = r->view + first * PAGE;
    wp.range.len = count * PAGE;
    wp.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
    if (ioctl(r->svc->uffd, UFFDIO_WRITEPROTECT, &wp) != 0) {
        bump(r->svc, C_ERRORS, 1);
        return -errno;
    }
    return 0;
}

/* Unmaps [first, first+count) from the view: the data there is gone, the next touch faults. */
static int zap(struct hm_region *r, uint64_t first, uint64_t count) {
    if (count == 0) {
        return 0;
    }
    if (madvise((void *) (r->view + first * PAGE), count * PAGE, MADV_DONTNEED) != 0) {
        bump(r->svc, C_ERRORS, 1);
        return -errno;
    }
    return 0;
}

/*
 * One userfaultfd fill of [dst, dst+len): UFFDIO_COPY from src (mode: UFFDIO_COPY_MODE_WP or 0),
 * or UFFDIO_ZEROPAGE when src is 0. Returns the bytes filled: the whole length, or those before a
 * page already mapped (then *exists is set), or those before a failure (then *err is -errno). The
 * pages filled before a failure are mapped and their waiters woken: the caller must account for
 * them (a failure of the second call of an EAGAIN split, or of a later run, leaves earlier pages in).
 */
static uint64_t fill(struct hm_service *s, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode, int *exists,
                     int *err) {
    uint64_t done = 0;
    *exists = 0;
    *err = 0;
    while (done < len) {
        uint64_t ask = len - done;
        int64_t armed = __atomic_load_n(&s->fail_after, __ATOMIC_ACQUIRE);
        if (armed >= 0 && __atomic_load_n(&s->fail_service_only, __ATOMIC_ACQUIRE)
                && !pthread_equal(pthread_self(), s->thread)) {
            armed = -1; /* tests only: a fill of the engine's (hm_home, hm_populate, fill_for_copy) is not to fail */
        }
        if (armed == 0) { /* tests only (hm_test_fail_fill) */
            if (__atomic_sub_fetch(&s->fail_times, 1, __ATOMIC_ACQ_REL) <= 0) {
                __atomic_store_n(&s->fail_after, -1, __ATOMIC_RELEASE);
            }
            bump(s, C_ERRORS, 1);
            *err = -__atomic_load_n(&s->fail_errno, __ATOMIC_RELAXED);
            return done;
        }
        if (armed > 0 && (uint64_t) armed * PAGE < ask) {
            ask = (uint64_t) armed * PAGE; /* tests only: the pages before the injected failure */
        }
        int64_t moved;
        int rc;
        if (src == 0) {
            struct uffdio_zeropage z;
            memset(&z, 0, sizeof z);
            z.range.start = dst + done;
            z.range.len = ask;
            rc = ioctl(s->uffd, UFFDIO_ZEROPAGE, &z);
            moved = z.zeropage;
        } else {
            struct uffdio_copy c;
            memset(&c, 0, sizeof c);
            c.dst = dst + done;
            c.src = src + done;
            c.len = ask;
            c.mode = mode;
            rc = ioctl(s->uffd, UFFDIO_COPY, &c);
            moved = c.copy;
        }
        int e = errno;
        if (rc == 0) {
            moved = (int64_t) ask;
        }
        if (moved > 0) {
            /* tests only: the pages count down from the value read, not from one armed since */
            int64_t left = armed > 0 ? armed - moved / (int64_t) PAGE : 0;
            if (armed > 0) {
                __atomic_compare_exchange_n(&s->fail_after, &armed, left > 0 ? left : 0, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_RELAXED);
            }
            done += (uint64_t) moved; /* all of it, or EAGAIN: part was done; the rest goes in the next call */
            continue;
        }
        if (e == EEXIST || moved == -EEXIST) {
            *exists = 1;
            return done;
        }
        if (e == EAGAIN) {
            continue;
        }
        bump(s, C_ERRORS, 1);
        *err = -e;
        return done;
    }
    return len;
}

/*
 * Installs [first, first+count) of the view as `how` says (H_COPY*: from srcs[], frames that
 * follow each other going in one call). A page already mapped is skipped (*skipped is set: the
 * kernel woke nobody waiting on it), except for H_COPY*, where a mapped page holds nothing of
 * value (the page is elsewhere): it is unmapped and filled again. Wakes threads waiting on the
 * pages filled. Returns 0 or -errno; *installed: how many pages from first are in the view as
 * planned (all of them on success; on a failure, those before it: mapped, their waiters woken, so
 * the caller must give them their new state words, not the old ones).
 */
static int install(struct hm_region *r, uint64_t first, uint64_t count, int how, const uint64_t *srcs, int *skipped,
                   uint64_t *installed) {
    struct hm_service *s = r->svc;
    uint64_t i = 0;
    *installed = 0;
    uint64_t retried = UINT64_MAX; /* the page last unmapped to be filled again: once each */
    while (i < count) {
        uint64_t j = i + 1;
        uint64_t src = 0;
        uint64_t mode = 0;
        if (how == H_COPY || how == H_COPY_RO) {
            while (j < count && srcs[j] == srcs[j - 1] + PAGE) {
                j++;
            }
            src = srcs[i];
            mode = how == H_COPY_RO ? UFFDIO_COPY_MODE_WP : 0;
        } else if (how == H_ZERO_READ) {
            j = count;
        } else {
            j = count - i > ZEROS_BYTES / PAGE ? i + ZEROS_BYTES / PAGE : count;
            src = (uint64_t) s->zeros;
            mode = how == H_ZERO_RO ? UFFDIO_COPY_MODE_WP : 0;
        }
        int exists;
        int err;
        uint64_t filled = fill(s, r->view + (first + i) * PAGE, src, (j - i) * PAGE, mode, &exists, &err) / PAGE;
        int copying = how == H_COPY || how == H_COPY_RO;
        bump(s, copying ? C_PAGES_COPIED : C_PAGES_MAPPED, filled);
        i += filled;
        *installed = i;
        if (err != 0) {
            return err;
        }
        if (!exists) {
            continue;
        }
        if (copying && retried != i) {
            /* a mapping where the page is AWAY: stale, whatever put it there; the device has the data */
            int e = zap(r, first + i, 1);
            if (e != 0) {
                return e;
            }
            retried = i;
            continue;
        }
        if (copying) {
            bump(s, C_ERRORS, 1);
            return -EEXIST;
        }
        *skipped = 1;
        i++;
        *installed = i;   /* mapped already, as planned for a page that is not copied */
    }
    return 0;
}

/* ---- the service ----------------------------------------------------------------------------- */

static struct hm_region *region_of(struct hm_service *s, uint64_t addr) {
    for (int i = 0; i < s->slots; i++) {
        struct hm_region *r = s->regions[i];
        if (r && addr >= r->view && addr < r->view + r->length) {
            return r;
        }
    }
    return NULL;
}

/*
 * What a missing-page fault does with page p of the granule around the faulting page fp: how it
 * is installed (H_*), or -1 to leave it alone; *nv is its new state word. The faulting page is
 * always installed (an install over a mapped page is refused by the kernel, harmlessly), so a
 * wrong MAPPED hint can never make a fault spin; neighbours a running kernel holds, neighbours
 * already mapped and neighbours on their way off the host are left alone.
 */
/* The granule of page p, in pages: the one advice set there, or the region's. */
static uint64_t granule_of(struct hm_region *r, uint64_t p) {
    uint8_t *shifts = __atomic_load_n(&r->granule_shift, __ATOMIC_ACQUIRE);
    uint8_t s = shifts ? __atomic_load_n(&shifts[p], __ATOMIC_RELAXED) : 0;
    return s ? 1ULL << (s - 1) : r->granule_pages;
}

static int plan_page(struct hm_region *r, uint64_t p, uint64_t fp, int write, uint64_t v, uint64_t *nv) {
    uint64_t kind = v & ST_KIND;
    int self = p == fp;
    *nv = v;
    if (r->dead) {
        if (!self) {
            return -1;
        }
        *nv = v | ST_MAPPED;
        return H_ZERO_WRITE;
    }
    if (kind == K_AWAY) {
        if (!self && (v & ST_BUSY)) {
            return -1;
        }
        /* pages coming from elsewhere come home writable: the host becomes their only holder */
        *nv = host_takes(r, p, v, ST_MAPPED);
        return H_COPY;
    }
    if (kind == K_LEAVING) {
        if (!self) {
            return -1;
        }
        if (write) {
            /* a write takes the page back: the copy being made off the host is dropped */
            *nv = host_takes(r, p, v, ST_MAPPED);
            return H_ZERO_WRITE;
        }
        *nv = v | ST_MAPPED;
        return H_ZERO_RO; /* readers may go on; writes must still fault */
    }
    if (!self && (v & (ST_MAPPED | ST_BUSY))) {
        /* a page a running kernel holds is the kernel's to touch first, even untouched: taken as a
         * neighbour (zeros, marked taken home) between a device fault's reconcile and its commit, it
         * was later taken as the page's truth over the kernel's stores */
        return -1;
    }
    uint64_t n = v | ST_MAPPED;
    if (!(v & ST_HELD)) {
        /* a first touch: the host now holds the page, and the page table must hear of it */
        n = steal(r, p, v, n | ST_HELD);
    }
    *nv = n;
    if (v & ST_RO) {
        return H_ZERO_RO;
    }
    return write ? H_ZERO_WRITE : H_ZERO_READ;
}

/*
 * A missing-page fault at page fp: the granule around it comes home. svc->lock is held. Returns 1
 * if fp itself could not be installed (its thread, woken, faults again), else 0.
 */
static int resolve(struct hm_region *r, uint64_t fp, int write) {
    int failed = 0;
    uint64_t g = granule_of(r, fp);
    uint64_t g0 = fp - fp % g;
    uint64_t g1 = g0 + g < r->pages ? g0 + g : r->pages;
    int woke = 0;
    uint64_t p = g0;
    while (p < g1) {
        /* one run: consecutive pages installed the same way, locked until installed */
        uint64_t run = p;
        int how = -1;
        uint64_t held[512];
        uint64_t srcs[512];
        uint64_t n = 0;
        while (p < g1 && n < 512) {
            uint64_t *w = &r->state[p];
            uint64_t v = lock_page(w);
            uint64_t nv;
            int h = plan_page(r, p, fp, write, v, &nv);
            if (h < 0 || (n > 0 && h != how)) {
                unlock_page(w, v);
                if (h < 0 && n == 0) {
                    p++;
                    run = p;
                    continue;
                }
                if (h < 0) {
                    p++;
                }
                break;
            }
            if (h == H_COPY) {
                srcs[n] = v & ST_SRC;
            }
            how = h;
            held[n++] = nv;
            p++;
        }
        if (n == 0) {
            continue;
        }
        int skipped = 0;
        uint64_t installed;
        int rc = install(r, run, n, how, srcs, &skipped, &installed);
        if (rc == 0 && !skipped && fp >= run && fp < run + n) {
            woke = 1;
        }
        if (rc != 0) {
            /* the pages installed before the failure are mapped and their waiters woken: they take their
               new words (restored to the old ones, a page mapped writable while its word says AWAY took
               stores that nothing saw, and the next fault of the granule zapped them as stale). Nothing
               changes for the pages that could not be installed: the thread faults again */
            unlock_range(r, run, installed, held);
            failed |= fp >= run + installed && fp < run + n;
            for (uint64_t i = installed; i < n; i++) {
                uint64_t *w = &r->state[run + i];
                unlock_page(w, __atomic_load_n(w, __ATOMIC_RELAXED));
            }
            continue;
        }
        if (r->dead && fp >= run && fp < run + n) {
            write_protect(r, fp, 1, 0); /* a write-protected page of a dead region becomes writable */
        }
        unlock_range(r, run, n, held);
    }
    if (!woke) {
        wake(r->svc, r->view + fp * PAGE);
    }
    return failed;
}

/*
 * A write to a write-protected page: the host becomes its only writer. svc->lock is held. Returns 1
 * if the page could not be made writable (its writer, woken, faults again), else 0.
 */
static int resolve_write(struct hm_region *r, uint64_t fp) {
    int failed = 0;
    uint64_t *w = &r->state[fp];
    uint64_t v = lock_page(w);
    uint64_t kind = v & ST_KIND;
    if (!r->dead && kind == K_AWAY) {
        /* gone since the fault: the write faults again, on a missing page, and comes home then
           (a write-protected mapping left where the page is AWAY could only be stale, and would
           make the writer fault here for ever: it is dropped either way) */
        zap(r, fp, 1);
        unlock_page(w, v & ~ST_MAPPED);
        wake(r->svc, r->view + fp * PAGE);
        return 0;
    }
    if (!r->dead && kind == K_LEAVING) {
        v = host_takes(r, fp, v, v & ST_MAPPED);
    } else if (!r->dead && (v & ST_RO)) {
        v = steal(r, fp, v, v & ~ST_RO);
    }
    if (write_protect(r, fp, 1, 0) != 0) {
        /* the unprotect wakes the writer only when it succeeds: woken now, the write faults again and
           is served again (a writer never woken would hold up every safepoint of the JVM) */
        wake(r->svc, r->view + fp * PAGE);
        failed = 1;
    }
    unlock_page(w, v);
    return failed;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t) t.tv_sec * 1000000000ULL + (uint64_t) t.tv_nsec;
}

/* How long the service polls without sleeping after a fault. */
#define SPIN_NS 50000ULL

/*
 * After a fault whose own page could not be installed (the copy failed: memory short, ENOMEM from a
 * cgroup's charge), its thread is woken and faults again at once. Served again at once, a failure
 * that lasts made the service and that thread spin, some 10^5 faults a second, a core burnt while the
 * thread could reach no safepoint. The service pauses before its next read instead: 1 us doubling
 * with each such fault in a row, at most FAILING_PAUSE_NS, as the kernel's own fault path waits for
 * memory and retries; the failing page served brings the pause back to nothing (another fault served
 * meanwhile does not: a zero page or an unprotect needs no memory). The pause comes after the batch
 * has closed, so that hm_busy never waits it out; other regions' faults wait through it: the failure
 * is the machine's, not the region's.
 */
#define FAILING_PAUSE_NS 10000000ULL

static void pause_after_failures(struct hm_service *s) {
    uint32_t shift = s->failing - 1 < 14 ? s->failing - 1 : 14;
    uint64_t ns = 1000ULL << shift;
    if (ns > FAILING_PAUSE_NS) {
        ns = FAILING_PAUSE_NS;
    }
    struct timespec t = {0, (long) ns};
    nanosleep(&t, NULL);
}

/*
 * Reads fault messages inside a batch (s->batch odd); a read that got none ends the batch at once.
 * The increment that opens the batch is a full barrier before the read: see SERVED_BEFORE_BUSY.
 */
static ssize_t read_batch(struct hm_service *s, struct uffd_msg *msgs, size_t size) {
    __atomic_fetch_add(&s->batch, 1, __ATOMIC_SEQ_CST);
    ssize_t got = read(s->uffd, msgs, size);
    if (got <= 0) {
        int e = errno;
        __atomic_fetch_add(&s->batch, 1, __ATOMIC_RELEASE);
        errno = e;
    } else {
        uint64_t hold = __atomic_load_n(&s->hold_ns, __ATOMIC_RELAXED);
        if (hold != 0) {
            __atomic_fetch_add(&s->held, (uint64_t) got / sizeof msgs[0], __ATOMIC_RELEASE);
            struct timespec t = {(time_t) (hold / 1000000000ULL), (long) (hold % 1000000000ULL)};
            nanosleep(&t, NULL);
        }
    }
    return got;
}

static void *serve(void *arg) {
    struct hm_service *s = arg;
    struct uffd_msg msgs[16];
    for (;;) {
        /* faults come in bursts (a thread walking through pages): right after one, poll without
           sleeping for a little while, so the next is read without a wake-up from idle (tens of
           microseconds on a virtual machine) */
        ssize_t got = -1;
        uint64_t until = now_ns() + SPIN_NS;
        while ((got = read_batch(s, msgs, sizeof msgs)) < 0 && errno == EAGAIN && now_ns() < until) {
            __builtin_ia32_pause();
        }
        if (got < 0) {
            struct pollfd pf[2] = {{s->uffd, POLLIN, 0}, {s->stopfd, POLLIN, 0}};
            if (poll(pf, 2, -1) < 0) {
                if (errno != EINTR) {
                    bump(s, C_ERRORS, 1);
                }
                continue;
            }
            if (pf[1].revents) {
                return NULL;
            }
            got = read_batch(s, msgs, sizeof msgs);
        }
        if (got <= 0) {
            continue;
        }
        int any_failed = 0;
        for (ssize_t i = 0; i < got / (ssize_t) sizeof msgs[0]; i++) {
            struct uffd_msg *m = &msgs[i];
            if (m->event != UFFD_EVENT_PAGEFAULT) {
                continue;
            }
            uint64_t addr = m->arg.pagefault.address;
            uint64_t flags = m->arg.pagefault.flags;
            int failed = 0;
            pthread_mutex_lock(&s->lock);
            struct hm_region *r = region_of(s, addr);
            if (r == NULL) {
                bump(s, C_ERRORS, 1);
            } else {
                uint64_t page = (addr - r->view) / PAGE;
                if (flags & UFFD_PAGEFAULT_FLAG_WP) {
                    bump(s, C_WP_FAULTS, 1);
                    failed = resolve_write(r, page);
                } else {
                    bump(s, C_FAULTS, 1);
                    failed = resolve(r, page, (flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0);
                }
            }
            pthread_mutex_unlock(&s->lock);
            if (failed) {
                s->failing++;
                s->failing_addr = addr & ~(PAGE - 1);
                any_failed = 1;
            } else if (s->failing && (addr & ~(PAGE - 1)) == s->failing_addr) {
                s->failing = 0; /* the page that failed went in: the failure is over (another thread's
                                   fault served meanwhile says nothing of it: a zero page needs no memory) */
            }
        }
        __atomic_fetch_add(&s->batch, 1, __ATOMIC_RELEASE); /* every message read is served */
        if (any_failed && s->failing) {
            /* after the batch: hm_busy waits for the batch in progress, and must not wait out the pause */
            pause_after_failures(s);
        }
    }
}

/* ---- opening ----------------------------------------------------------------------------------- */

static uint64_t map_view(uint64_t length);

/*
 * Whether this kernel registers anonymous memory for missing-page and write-protect faults and
 * offers the ioctls the service uses on it (write protection of anonymous memory: Linux 5.7).
 */
static int features_ok(int fd) {
    uint64_t view = map_view(PAGE);
    if (view == 0) {
        return 0;
    }
    struct uffdio_register reg = {.range = {view, PAGE}, .mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP};
    int ok = ioctl(fd, UFFDIO_REGISTER, &reg) == 0;
    uint64_t need = (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE) | (1ULL << _UFFDIO_WRITEPROTECT)
            | (1ULL << _UFFDIO_WAKE);
    ok = ok && (reg.ioctls & need) == need;
    munmap((void *) view, PAGE);
    return ok;
}

static int open_uffd(int *err) {
    int fd = (int) syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int first = errno;
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev >= 0) {
            fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
            int e = errno;
            close(dev);
            errno = e;
        }
        if (fd < 0) {
            *err = first;
            return E_SYSCALL;
        }
    }
    struct uffdio_api api = {.api = UFFD_API, .features = 0};
    if (ioctl(fd, UFFDIO_API, &api) != 0) {
        *err = errno;
        close(fd);
        return E_API;
    }
    if (!features_ok(fd)) {
        *err = errno;
        close(fd);
        return E_FEATURES;
    }
    return fd;
}

/* 0 if the mode can run here, else one of the E_ codes with errno in *err. */
int hm_probe(int *err) {
    *err = 0;
    int fd = open_uffd(err);
    if (fd < 0) {
        return fd;
    }
    close(fd);
    return 0;
}

/* The service, or NULL with *code one of the E_ codes and *err the errno behind it. */
struct hm_service *hm_service_open(int *code, int *err) {
    *err = 0;
    *code = 0;
    int fd = open_uffd(err);
    if (fd < 0) {
        *code = fd;
        return NULL;
    }
    /* aligned as its type asks: the batch counter keeps a cache line to itself */
    struct hm_service *s = aligned_alloc(_Alignof(struct hm_service), sizeof *s);
    if (s != NULL) {
        memset(s, 0, sizeof *s);
    }
    void *zeros = mmap(NULL, ZEROS_BYTES, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s == NULL || zeros == MAP_FAILED) {
        *err = errno ? errno : ENOMEM;
        if (zeros != MAP_FAILED) {
            munmap(zeros, ZEROS_BYTES);
        }
        free(s);
        close(fd);
        *code = E_THREAD;
        return NULL;
    }
    s->uffd = fd;
    s->zeros = zeros;
    s->fail_after = -1;
    s->stopfd = eventfd(0, EFD_CLOEXEC);
    pthread_mutex_init(&s->lock, NULL);
    if (s->stopfd < 0 || pthread_create(&s->thread, NULL, serve, s) != 0) {
        *code = E_THREAD;
        *err = errno ? errno : EAGAIN;
        if (s->stopfd >= 0) {
            close(s->stopfd);
        }
        munmap(zeros, ZEROS_BYTES);
        close(fd);
        free(s);
        return NULL;
    }
    pthread_setname_np(s->thread, "hetmem-uffd");
    return s;
}

/* Stops the service. Every region must have been destroyed. */
void hm_service_close(struct hm_service *s) {
    uint64_t one = 1;
    if (write(s->stopfd, &one, sizeof one) != sizeof one) {
        bump(s, C_ERRORS, 1);
    }
    pthread_join(s->thread, NULL);
    close(s->stopfd);
    close(s->uffd);
    munmap((void *) s->zeros, ZEROS_BYTES);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void hm_service_counters(struct hm_service *s, uint64_t *out) {
    for (int i = 0; i < C_COUNT; i++) {
        out[i] = __atomic_load_n(&s->counters[i], __ATOMIC_RELAXED);
    }
}

/*
 * Tests only: the service sleeps ns after each read that got fault messages (0: never). Returns how
 * many messages it has read while holding so far.
 */
uint64_t hm_test_hold(struct hm_region *r, uint64_t ns) {
    if (ns != UINT64_MAX) {
        __atomic_store_n(&r->svc->hold_ns, ns, __ATOMIC_RELAXED);
    }
    return __atomic_load_n(&r->svc->held, __ATOMIC_ACQUIRE);
}

/*
 * Tests only: the service's fills (a fault's installs, and unless service_only hm_home's and
 * hm_populate's) fail with errno err once after_pages more pages have been filled, times fills in a
 * row (each failing at once after the first); after_pages -1 disarms. Returns the fills still to
 * fail (0: none armed).
 */
int64_t hm_test_fail_fill(struct hm_region *r, int64_t after_pages, int64_t times, int err, int service_only) {
    struct hm_service *s = r->svc;
    if (after_pages != INT64_MIN) {
        /* disarmed first, then the settings, then published: a fill that reads fail_after armed sees them */
        __atomic_store_n(&s->fail_after, -1, __ATOMIC_RELEASE);
        if (after_pages < 0 || times <= 0) {
            return 0;
        }
        __atomic_store_n(&s->fail_errno, err > 0 ? err : EIO, __ATOMIC_RELAXED); /* 0 would read as progress */
        __atomic_store_n(&s->fail_service_only, service_only, __ATOMIC_RELAXED);
        __atomic_store_n(&s->fail_times, times, __ATOMIC_RELAXED);
        __atomic_store_n(&s->fail_after, after_pages, __ATOMIC_RELEASE);
    }
    return __atomic_load_n(&s->fail_after, __ATOMIC_ACQUIRE) < 0 ? 0 : __atomic_load_n(&s->fail_times, __ATOMIC_ACQUIRE);
}

/* ---- regions ------------------------------------------------------------------------------------ */

/*
 * A private anonymous mapping of length bytes on a 2 MiB boundary, or 0. Faults never give it a
 * huge page (a missing page always goes to the service, which installs small ones), but hm_populate
 * collapses whole blocks it filled, and khugepaged may too: the kernel never collapses a block of a
 * userfaultfd-registered mapping that has a missing or write-protected page, so no page the state
 * word calls AWAY can be filled behind the service's back.
 */
static uint64_t map_view(uint64_t length) {
    uint64_t ask = length + ALIGN;
    char *raw = mmap(NULL, ask, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) {
        return 0;
    }
    uint64_t aligned = ((uint64_t) raw + ALIGN - 1) & ~(ALIGN - 1);
    if (mmap((void *) aligned, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
             -1, 0) == MAP_FAILED) {
        munmap(raw, ask);
        return 0;
    }
    if (aligned > (uint64_t) raw) {
        munmap(raw, aligned - (uint64_t) raw);
    }
    uint64_t tail = (uint64_t) raw + ask - (aligned + length);
    if (tail) {
        munmap((void *) (aligned + length), tail);
    }
    return aligned;
}

static void unmap_region(struct hm_region *r) {
    if (r->view) {
        munmap((void *) r->view, r->length);
    }
    if (r->state) {
        munmap(r->state, r->pages * 8);
    }
    if (r->flags) {
        munmap(r->flags, r->flags_bytes);
    }
    if (r->granule_shift) {
        munmap(r->granule_shift, r->pages);
    }
    free(r->busy_more);
    free(r);
}

/*
 * A region of length bytes (whole pages): out[0] view, out[1] state table, out[2] block flags.
 * NULL with *err = errno on failure, nothing left behind.
 */
struct hm_region *hm_region_create(struct hm_service *s, uint64_t length, uint32_t granule_pages, uint64_t *out,
                                   int *err) {
    struct hm_region *r = calloc(1, sizeof *r);
    if (r == NULL) {
        *err = ENOMEM;
        return NULL;
    }
    r->svc = s;
    r->length = (length + PAGE - 1) & ~(PAGE - 1);
    r->pages = r->length / PAGE;
    r->granule_pages = granule_pages ? granule_pages : 1;
    r->flags_bytes = ((r->pages + 511) / 512 + 1 + PAGE - 1) & ~(PAGE - 1);
    r->view = map_view(r->length);
    if (!r->view) {
        goto fail;
    }
    r->state = mmap(NULL, r->pages * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r->state == MAP_FAILED) {
        r->state = NULL;
        goto fail;
    }
    r->flags = mmap(NULL, r->flags_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r->flags == MAP_FAILED) {
        r->flags = NULL;
        goto fail;
    }
    struct uffdio_register reg = {.range = {r->view, r->length},
                                  .mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP};
    if (ioctl(s->uffd, UFFDIO_REGISTER, &reg) != 0) {
        goto fail;
    }
    pthread_mutex_lock(&s->lock);
    int slot = -1;
    for (int i = 0; i < MAX_REGIONS && slot < 0; i++) {
        if (s->regions[i] == NULL) {
            slot = i;
        }
    }
    if (slot >= 0) {
        s->regions[slot] = r;
        s->slots = slot + 1 > s->slots ? slot + 1 : s->slots;
    }
    pthread_mutex_unlock(&s->lock);
    if (slot < 0) {
        struct uffdio_range range = {r->view, r->length};
        ioctl(s->uffd, UFFDIO_UNREGISTER, &range);
        errno = EMFILE;
        goto fail;
    }
    out[0] = r->view;
    out[1] = (uint64_t) r->state;
    out[2] = (uint64_t) r->flags;
    return r;
fail:
    *err = errno;
    unmap_region(r);
    return NULL;
}

/*
 * Pages [first, first+count) have granules of 2^shift pages (Advice.granularity, up to 1 GiB: shift
 * at most 18): a fault there brings that granule home. Called under the region's attribute lock
 * (L7), so never by two threads at once for one region. Returns 0, -EINVAL, or -ENOMEM (nothing
 * changed: the table could not be made).
 */
int hm_region_granule(struct hm_region *r, uint64_t first, uint64_t count, uint32_t shift) {
    if (first > r->pages || count > r->pages - first || shift > 18) {
        return -EINVAL;
    }
    uint8_t *shifts = __atomic_load_n(&r->granule_shift, __ATOMIC_ACQUIRE);
    if (shifts == NULL) {
        void *m = mmap(NULL, r->pages, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            return -ENOMEM;
        }
        shifts = m;   /* zeros: every page has the region's granule */
        __atomic_store_n(&r->granule_shift, shifts, __ATOMIC_RELEASE);
    }
    for (uint64_t p = first; p < first + count; p++) {
        __atomic_store_n(&shifts[p], (uint8_t) (shift + 1), __ATOMIC_RELAXED);
    }
    return 0;
}

/*
 * The region is being freed: from now on a fault maps a zeroed page (where the view holds
 * nothing) and lifts write protection, and reads no device frame, so those frames may be freed
 * once this returns.
 */
void hm_region_kill(struct hm_region *r) {
    pthread_mutex_lock(&r->svc->lock);
    r->dead = 1;
    pthread_mutex_unlock(&r->svc->lock);
}

/* Unregisters and unmaps the region; no thread may touch its view any more. */
void hm_region_destroy(struct hm_region *r) {
    struct hm_service *s = r->svc;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < MAX_REGIONS; i++) {
        if (s->regions[i] == r) {
            s->regions[i] = NULL;
        }
    }
    while (s->slots > 0 && s->regions[s->slots - 1] == NULL) {
        s->slots--;
    }
    struct uffdio_range range = {r->view, r->length};
    ioctl(s->uffd, UFFDIO_UNREGISTER, &range);
    pthread_mutex_unlock(&s->lock);
    unmap_region(r);
}

/* ---- transitions asked for by the migration engine (Java holds the block locks) ---------------- */

/* Applies op (zap, or write protection on/off) to the runs of [first, first+count) whose mark[i] is set. */
static int each_run(struct hm_region *r, uint64_t first, uint64_t count, const uint8_t *mark, int op) {
    int rc = 0;
    uint64_t i = 0;
    while (i < count) {
        if (!mark[i]) {
            i++;
            continue;
        }
        uint64_t j = i;
        while (j < count && mark[j]) {
            j++;
        }
        int e = op < 0 ? zap(r, first + i, j - i) : write_protect(r, first + i, j - i, op);
        rc = rc ? rc : e;
        i = j;
    }
    return rc;
}

#define OP_ZAP -1
#define OP_UNPROTECT 0
#define OP_PROTECT 1

/*
 * Pages of [first, first+count) that a copy is about to read through the view (the migration
 * engine copies host pages from there) and whose missing[i] is set, the host holding them as zeros
 * with nothing mapped (not MAPPED: pages nobody held that a migration home made the host's, after
 * DONT_NEED for instance), get a zeroed page each, write-protected in the same ioctl. Left missing, the copy's read
 * faulted, and the service cannot tell hetmem's read from host code's: it took the granule around
 * the page home, device-held neighbours and untouched pages included, the very pages the
 * migration under way had been asked to move (a prefetch returned with them at home). A fill that
 * fails leaves its pages missing and the migration goes on: the copy's read faults as before,
 * which costs the granule's placement, never a byte. The caller holds the pages' locks; old[]
 * gets MAPPED for the pages filled.
 */
static void fill_for_copy(struct hm_region *r, uint64_t first, uint64_t count, uint64_t *old, const uint8_t *missing) {
    for (uint64_t i = 0; i < count; i++) {
        if (!missing[i]) {
            continue;
        }
        uint64_t j = i + 1;
        while (j < count && missing[j]) {
            j++;
        }
        /* a page mapped after all (MAPPED is a hint) is skipped by the kernel; the caller protects it */
        int skipped = 0;
        uint64_t installed;
        install(r, first + i, j - i, H_ZERO_RO, NULL, &skipped, &installed);
        for (uint64_t k = i; k < i + installed; k++) {
            old[k] |= ST_MAPPED;
        }
        i = j;
    }
}

/*
 * The host's copy of [first, first+count) (at most 512 pages) is about to be copied out: pages
 * become LEAVING, write-protected in the view, so that readers go on and a writer faults (and
 * takes the page back, STOLEN); those with nothing mapped get zeros to be read (fill_for_copy).
 * Pages already STOLEN stay as they are. Returns 0 or -errno.
 */
int hm_leave(struct hm_region *r, uint64_t first, uint64_t count) {
    if (count > 512) {
        return -E2BIG;
    }
    uint64_t old[512];
    uint8_t mark[512] = {0};
    uint8_t missing[512] = {0};
    lock_range(r, first, count, old);
    for (uint64_t i = 0; i < count; i++) {
        uint64_t v = old[i];
        mark[i] = (v & ST_KIND) == K_HOST && !(v & ST_STOLEN);
        if (mark[i]) {
            old[i] = (v & (ST_BUSY | ST_LOCK | ST_MAPPED)) | K_LEAVING;
            missing[i] = !(v & ST_MAPPED);
        }
    }
    int rc = each_run(r, first, count, mark, OP_PROTECT);
    fill_for_copy(r, first, count, old, missing);
    unlock_range(r, first, count, old);
    return rc;
}

/*
 * Device-to-host copy of AWAY pages (at most 512): srcs[i] is where page first+i is now (a device
 * frame the host can read; 0 = skip). Copied pages become LEAVING: mapped write-protected until
 * hm_sync says what the host may do with them (a write before that takes them, STOLEN). Pages the
 * service took meanwhile are not overwritten.
 */
int hm_home(struct hm_region *r, uint64_t first, uint64_t count, const uint64_t *srcs) {
    if (count > 512) {
        return -E2BIG;
    }
    uint64_t old[512];
    lock_range(r, first, count, old);
    int rc = 0;
    uint64_t i = 0;
    while (i < count) {
        uint64_t v = old[i];
        if ((v & ST_KIND) != K_AWAY || (v & ST_STOLEN) || srcs[i] == 0) {
            i++;
            continue;
        }
        uint64_t j = i + 1;
        while (j < count && (old[j] & ST_KIND) == K_AWAY && !(old[j] & ST_STOLEN) && srcs[j] != 0) {
            j++;
        }
        int skipped = 0;
        uint64_t installed;
        /* copied and write-protected in one step: no store can slip in between */
        int e = install(r, first + i, j - i, H_COPY_RO, srcs + i, &skipped, &installed);
        if (e != 0) {
            /* the pages stay AWAY, and so missing: those installed before the failure too, which no
               store can have reached (write-protected); a reader woken meanwhile faults again */
            zap(r, first + i, j - i);
            rc = rc ? rc : e;
        } else {
            for (uint64_t k = i; k < j; k++) {
                old[k] = (old[k] & (ST_BUSY | ST_LOCK)) | K_LEAVING | ST_MAPPED;
            }
        }
        i = j;
    }
    unlock_range(r, first, count, old);
    return rc;
}

/*
 * Makes the view mirror the logical page table for [first, first+count) (at most 512 pages):
 * WANT_HOST / WANT_HOST_RO: the host holds the pages (read-only: write-protected in the view);
 * WANT_HOST_RO_COPIED: as WANT_HOST_RO, for pages a copy is about to read (read duplication): those
 * with nothing mapped get zeros to be read (fill_for_copy);
 * WANT_AWAY: only devices hold them, srcs[i] is a frame the host can read (the view drops them);
 * WANT_EMPTY: nobody holds them: they read as zeros. STOLEN pages are left alone (the host took
 * them after Java last looked; hm_collect tells Java). WANT_DISCARD, after a WANT_EMPTY of the same
 * pages: the STOLEN ones become empty too, the others are left as they are (DONT_NEED: a page the
 * service copied home as a fault's neighbour after the discard looked holds bytes the discard
 * drops; a host store racing the discard is dropped with it, as a store racing
 * madvise(MADV_DONTNEED) may be). WANT_LOADED: as WANT_AWAY, and the STOLEN pages too (a load's
 * commit: the pages were untouched when the engine looked, so the service took them since as zeros,
 * a fault's neighbours or the fault's own page; the loaded bytes are the pages' truth, and a host
 * store racing the load is dropped, as one racing a write of the whole page may be). Done in the one
 * locked pass that makes the other pages AWAY: a page the service takes after it is a copy of the
 * loaded bytes, and must stay the host's. Returns 0, -errno, or -EPROTO when a page asked to be
 * HOST has no data on the host (a caller bug).
 */
int hm_sync(struct hm_region *r, uint64_t first, uint64_t count, int want, const uint64_t *srcs) {
    if (count > 512) {
        return -E2BIG;
    }
    uint64_t old[512];
    uint8_t mark[512] = {0};
    uint8_t missing[512] = {0};
    lock_range(r, first, count, old);
    int rc = 0;
    int unprotect = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t v = old[i];
        /* a discard follows the engine's EMPTY sync of the same pages: only those taken since are left */
        mark[i] = want == WANT_DISCARD ? (v & ST_STOLEN) != 0 : want == WANT_LOADED || !(v & ST_STOLEN);
        if (!mark[i]) {
            continue;
        }
        uint64_t kind = v & ST_KIND;
        uint64_t keep = v & (ST_BUSY | ST_LOCK);
        switch (want) {
            case WANT_HOST:
            case WANT_HOST_RO:
            case WANT_HOST_RO_COPIED:
                if (kind == K_AWAY) {
                    rc = -EPROTO;
                    mark[i] = 0;
                    continue;
                }
                unprotect |= (v & ST_RO) || kind == K_LEAVING;
                missing[i] = want == WANT_HOST_RO_COPIED && !(v & ST_MAPPED);
                old[i] = keep | K_HOST | ST_HELD | (want != WANT_HOST ? ST_RO : 0) | (v & ST_MAPPED);
                break;
            case WANT_AWAY:
            case WANT_LOADED:
                old[i] = keep | K_AWAY | (srcs[i] & ST_SRC);
                break;
            default:
                old[i] = keep | K_HOST;
                break;
        }
    }
    int e = 0;
    if (want == WANT_AWAY || want == WANT_LOADED || want == WANT_EMPTY || want == WANT_DISCARD) {
        /* host data goes where nobody on the host holds the page any more (a STOLEN page's only when
         * discarded, or when a load's bytes replace it) */
        e = each_run(r, first, count, mark, OP_ZAP);
    } else if (want == WANT_HOST_RO || want == WANT_HOST_RO_COPIED) {
        e = each_run(r, first, count, mark, OP_PROTECT);
        if (want == WANT_HOST_RO_COPIED) {
            fill_for_copy(r, first, count, old, missing);
        }
    } else if (unprotect) {
        e = each_run(r, first, count, mark, OP_UNPROTECT);
    }
    rc = rc ? rc : e;
    unlock_range(r, first, count, old);
    return rc;
}

/*
 * Gives the host pages of [first, first+count) that read as zeros and are not mapped (HOST, held,
 * missing) a zeroed writable page each, in calls of up to 2 MiB: what a writer about to fill them
 * (the loader) would otherwise get one fault at a time. Other pages are left as they are.
 * Returns 0 or -errno.
 */
int hm_populate(struct hm_region *r, uint64_t first, uint64_t count) {
    if (first > r->pages || count > r->pages - first) {
        return -EINVAL;
    }
    int rc = 0;
    for (uint64_t at = first; at < first + count && rc == 0; at += 512) {
        uint64_t n = first + count - at < 512 ? first + count - at : 512;
        uint64_t old[512];
        lock_range(r, at, n, old);
        uint64_t i = 0;
        while (i < n && rc == 0) {
            uint64_t want = ST_KIND | ST_HELD | ST_MAPPED | ST_RO;
            if ((old[i] & want) != (K_HOST | ST_HELD)) {
                i++;
                continue;
            }
            uint64_t j = i + 1;
            while (j < n && (old[j] & want) == (K_HOST | ST_HELD)) {
                j++;
            }
            int skipped = 0;
            uint64_t installed;
            rc = install(r, at + i, j - i, H_ZERO_WRITE, NULL, &skipped, &installed);
            for (uint64_t k = i; k < i + installed; k++) {
                old[k] |= ST_MAPPED;   /* on a failure too: the pages before it are mapped */
            }
            i = j;
        }
        int whole = rc == 0 && n == 512 && at % 512 == 0;
        for (uint64_t k = 0; k < n && whole; k++) {
            whole = (old[k] & (ST_KIND | ST_HELD | ST_MAPPED | ST_RO)) == (K_HOST | ST_HELD | ST_MAPPED);
        }
        unlock_range(r, at, n, old);
        if (whole) {
            /* a whole block of writable host pages: one huge page, so that a direct read into it is
               one block-layer segment per 2 MiB rather than one per 4 KiB (best effort). After the
               page locks: a collapse may compact and reclaim for a long time, and the service
               would spin on those locks meanwhile with every region's faults waiting. Unlocked, a
               page of the block may be zapped first; then the collapse fails, as the kernel never
               fills a hole of a userfaultfd-registered range (max_ptes_none is 0 there) */
            madvise((void *) (r->view + at * PAGE), ALIGN, MADV_COLLAPSE_);
        }
    }
    return rc;
}

/*
 * Pages of block b the service took since the last call (STOLEN, and not BUSY, or BUSY too where
 * their bit of busy_ok[0..7] is set, busy_ok not NULL: the caller knows that no kernel holding such
 * a page can still reach its device copy unseen, see the Java caller): their bits go to out[0..7]
 * and are cleared. Returns how many.
 */
int hm_collect(struct hm_region *r, uint64_t block, uint64_t *out, const uint64_t *busy_ok) {
    memset(out, 0, 64);
    if (!__atomic_load_n(&r->flags[block], __ATOMIC_ACQUIRE)) {
        return 0;
    }
    /* clear first: a steal after this sets it again. The fence orders the clear before the loads of
       the state words below: a release store followed by acquire loads does not (x86 lets the loads
       pass the store in its store buffer), and then a steal that locked a page after our load of its
       word and set the flag would have that flag overwritten by our late clear, leaving a STOLEN page
       no collect finds: its host copy would outlive a move of the page to a device */
    __atomic_store_n(&r->flags[block], 0, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t first = block * 512;
    uint64_t end = first + 512 < r->pages ? first + 512 : r->pages;
    int n = 0;
    int left = 0;
    for (uint64_t p = first; p < end; p++) {
        uint64_t *w = &r->state[p];
        /* a locked page may be one the service is taking right now: its STOLEN bit is written
           when it unlocks, after the block flag this call has just cleared, so wait for it */
        if (!(__atomic_load_n(w, __ATOMIC_ACQUIRE) & (ST_STOLEN | ST_LOCK))) {
            continue;
        }
        uint64_t v = lock_page(w);
        int busy_taken = busy_ok && ((busy_ok[(p - first) >> 6] >> ((p - first) & 63)) & 1);
        if ((v & ST_STOLEN) && (busy_taken || !(v & ST_BUSY))) {
            v &= ~ST_STOLEN;
            out[(p - first) >> 6] |= 1ULL << ((p - first) & 63);
            n++;
        } else if (v & ST_STOLEN) {
            left = 1;
        }
        unlock_page(w, v);
    }
    if (left) {
        mark_stolen(r, first);
    }
    return n;
}

/*
 * The pages of mask[0..7] (bits of block b, as hm_collect gave them) are marked STOLEN again: the
 * engine collected them and could not take them into its page table (a driver's unmap failed), so
 * the next collect reports them again instead of their being lost to it. Not counted as steals.
 */
void hm_uncollect(struct hm_region *r, uint64_t block, const uint64_t *mask) {
    uint64_t first = block * 512;
    uint64_t end = first + 512 < r->pages ? first + 512 : r->pages;
    int any = 0;
    for (uint64_t p = first; p < end; p++) {
        if (!((mask[(p - first) >> 6] >> ((p - first) & 63)) & 1)) {
            continue;
        }
        uint64_t *w = &r->state[p];
        uint64_t v = lock_page(w);
        unlock_page(w, v | ST_STOLEN);
        any = 1;
    }
    if (any) {
        mark_stolen(r, first);   /* after the words: a collect that sees the flag finds them */
    }
}

/* The region's counts beyond 31 kernels a page, allocated at the first need; NULL if that fails. */
static uint32_t *busy_more(struct hm_region *r) {
    uint32_t *more = __atomic_load_n(&r->busy_more, __ATOMIC_ACQUIRE);
    if (more == NULL) {
        uint32_t *fresh = calloc(r->pages, sizeof *fresh);
        if (fresh == NULL) {
            return NULL;
        }
        if (__atomic_compare_exchange_n(&r->busy_more, &more, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            more = fresh;
        } else {
            free(fresh); /* another page's hm_busy allocated it first: more holds it now */
        }
    }
    return more;
}

/* Waits out the service's batch in progress, if one is open (the counter odd), after a full fence. */
static void await_batch(struct hm_service *s) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t b = __atomic_load_n(&s->batch, __ATOMIC_SEQ_CST);
    int spins = 0;
    while ((b & 1) && __atomic_load_n(&s->batch, __ATOMIC_ACQUIRE) == b) {
        if (++spins > 64) {
            sched_yield();
        } else {
            __builtin_ia32_pause();
        }
    }
}

/*
 * Marks pages a running kernel holds (on != 0) or no longer holds.
 *
 * SERVED_BEFORE_BUSY: marking pages on returns only once every fault message the service read
 * before the marks were made has been served. A message can be served late, after its thread was
 * woken by someone else: an install by hm_home wakes every thread waiting on the page, the thread's
 * access completes, and the message the service already holds goes stale. Served after the page
 * had gone to a device and a kernel had taken it, it would take the page home as the fault's own
 * page (BUSY or not) and the kernel's stores would be lost (UserfaultfdTest found it with the
 * service held after its read). Waiting here, the caller's check for steals after marking (the
 * engine's PIN_AFTER_STEAL, a faulting launch's reconcile) sees every such steal; a message read
 * after the marks is from a thread still waiting for a page a kernel already held: host code
 * racing the kernel, as the design allows.
 * Why it holds: a message goes stale only when its thread is woken after the service read it (the
 * kernel reads a message and wakes its thread under one queue lock, and a thread woken before the
 * read takes its message off the queue), and the service reads only inside a batch (the counter
 * odd). So the batch opening, the read, the wake, the thread's access completing, whatever orders
 * the caller after that access and the marks here happen in that order: the counter read below sees
 * that batch's opening or a later value. If odd and unchanged, the batch is waited out; any later
 * value comes after that batch's closing increment, which publishes its steals (release; all the
 * increments are read-modify-writes, so later values carry it). The fence is not needed for that;
 * it keeps the marks ahead of the counter read, so a message read after it also sees the marks on
 * x86. The service never waits for Java (see the top of this file), so neither does this wait:
 * a batch is at most 16 bounded installs. Every pin and faulting launch on such a region pays the
 * fence, and at most one batch when the service is busy.
 */
void hm_busy(struct hm_region *r, uint64_t first, uint64_t count, int on) {
    for (uint64_t i = 0; i < count; i++) {
        uint64_t *w = &r->state[first + i];
        uint64_t v = lock_page(w);
        if (on && (v & ST_BUSY) == ST_BUSY && __atomic_load_n(&r->busy_more, __ATOMIC_ACQUIRE) == NULL) {
            /* the counts beyond 31 are allocated outside the page lock (only madvise and ioctls run
             * under page locks), then the page is looked at again */
            unlock_page(w, v);
            busy_more(r);
            v = lock_page(w);
        }
        uint64_t b = v & ST_BUSY;
        if (on) {
            if (b != ST_BUSY) {
                v += ST_BUSY_ONE;
            } else {
                /* more than 31 kernels: the rest of the count lives beside the word */
                uint32_t *more = __atomic_load_n(&r->busy_more, __ATOMIC_ACQUIRE);
                if (more != NULL) {
                    more[first + i]++;
                } else {
                    __atomic_store_n(&r->busy_sticky, 1, __ATOMIC_RELAXED);
                }
            }
        } else if (b == ST_BUSY) {
            uint32_t *more = __atomic_load_n(&r->busy_more, __ATOMIC_ACQUIRE);
            if (more != NULL && more[first + i] > 0) {
                more[first + i]--;
            } else if (!__atomic_load_n(&r->busy_sticky, __ATOMIC_RELAXED)) {
                v -= ST_BUSY_ONE;
            }
        } else if (b != 0) {
            v -= ST_BUSY_ONE;
        }
        unlock_page(w, v);
        if (!on && !(v & ST_BUSY) && (v & ST_STOLEN)) {
            mark_stolen(r, first + i);
        }
    }
    if (on) {
        await_batch(r->svc);
    }
}

/*
 * SERVED_BEFORE_LEAVE: returns once every fault message the service read before the call has been
 * served. The engine calls it before it takes pages off the host (hm_leave, a write-protect for a
 * duplicate) whose host copy a device mapped in place, once that device's entries are gone and its
 * invalidation has returned (DEVICES_BEFORE_HOST). A work item's access through such an entry is a
 * CPU access to the view: on a page the host holds but has not mapped it faults, and its message can
 * go stale as a host thread's does (SERVED_BEFORE_BUSY: another install on the page wakes the item,
 * whose access completes). The marks of hm_busy come before the launch's items run, so they do not
 * wait such a message out: served after the page went to a device, it took the page home as the
 * fault's own page, and the items' stores to the device's copy were lost at the next reconcile (a
 * review found it; the stress program lost a work item's stores with in-place mappings under a
 * faulting launch, NO_REMOTE_UNDER_FAULTING_UFFD). Why it holds: the invalidation returned, so every
 * access through the old entries completed, each after the read of any message of its own that went
 * stale (the argument of SERVED_BEFORE_BUSY); the batch of that read is the one open now or an
 * earlier one, and waiting out the open batch serves it.
 */
void hm_await_served(struct hm_region *r) {
    await_batch(r->svc);
}

/*
 * What the view really maps, for verification: out[i] for page first+i (at most 512) is bit 0:
 * mapped, bit 1: write-protected (from /proc/self/pagemap). Returns 0 or -errno.
 */
int hm_view_pages(struct hm_region *r, uint64_t first, uint64_t count, uint8_t *out) {
    if (count > 512 || first + count > r->pages) {
        return -E2BIG;
    }
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    uint64_t entries[512];
    ssize_t want = (ssize_t) (count * 8);
    ssize_t got = pread(fd, entries, (size_t) want, (off_t) ((r->view / PAGE + first) * 8));
    int e = errno;
    close(fd);
    if (got != want) {
        return got < 0 ? -e : -EIO;
    }
    for (uint64_t i = 0; i < count; i++) {
        /* bit 63: present; bit 57: write-protected by userfaultfd */
        out[i] = (uint8_t) (((entries[i] >> 63) & 1 ? VIEW_MAPPED : 0) | (((entries[i] >> 57) & 1) ? VIEW_WRITE_PROTECTED : 0));
    }
    return 0;
}
/* ---- limits for `hetmem bench fault` ------------------------------------------------------------ */


struct raw_bench {
    int uffd;
    int stopfd;
    /* copy: the page is filled from src by UFFDIO_COPY (the service's own way for a page coming
       home); otherwise the zero page goes in */
    int copy;
    const char *src;
    uint64_t base;
};

static void *raw_serve(void *arg) {
    struct raw_bench *b = arg;
    struct uffd_msg m;
    for (;;) {
        /* the service's own loop: a short spin, then poll */
        ssize_t got;
        uint64_t until = now_ns() + SPIN_NS;
        while ((got = read(b->uffd, &m, sizeof m)) < 0 && errno == EAGAIN && now_ns() < until) {
            __builtin_ia32_pause();
        }
        if (got < 0) {
            struct pollfd pf[2] = {{b->uffd, POLLIN, 0}, {b->stopfd, POLLIN, 0}};
            if (poll(pf, 2, -1) < 0) {
                continue;
            }
            if (pf[1].revents) {
                return NULL;
            }
            got = read(b->uffd, &m, sizeof m);
        }
        if (got != sizeof m || m.event != UFFD_EVENT_PAGEFAULT) {
            continue;
        }
        uint64_t at = m.arg.pagefault.address & ~(PAGE - 1);
        if (b->copy) {
            struct uffdio_copy c = {.dst = at, .src = (uint64_t) b->src + (at - b->base), .len = PAGE, .mode = 0};
            ioctl(b->uffd, UFFDIO_COPY, &c);
        } else {
            struct uffdio_zeropage z = {{at, PAGE}, 0, 0};
            ioctl(b->uffd, UFFDIO_ZEROPAGE, &z);
        }
    }
}

/*
 * The bare userfaultfd round trip on anonymous memory: a thread reads a missing page, a handler
 * thread (the service's loop: a short spin, then poll) resolves it. copy = 0: the zero page goes
 * in; copy = 1: the page is copied in by UFFDIO_COPY from a buffer, as the service brings a
 * device page home (the floor of the service's own path). out[i]: ns for touch i.
 */
int hm_bench_raw(int pages, int copy, uint64_t *out) {
    int err;
    struct raw_bench b;
    memset(&b, 0, sizeof b);
    b.copy = copy;
    b.uffd = (int) syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (b.uffd < 0) {
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev < 0) {
            return -errno;
        }
        b.uffd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
        err = errno;
        close(dev);
        if (b.uffd < 0) {
            return -err;
        }
    }
    struct uffdio_api api = {.api = UFFD_API, .features = 0};
    uint64_t len = (uint64_t) pages * PAGE;
    char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *src = MAP_FAILED;
    if (copy) {
        src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    }
    b.src = src;
    b.base = (uint64_t) mem;
    struct uffdio_register reg = {.range = {(uint64_t) mem, len}, .mode = UFFDIO_REGISTER_MODE_MISSING};
    b.stopfd = eventfd(0, EFD_CLOEXEC);
    pthread_t t;
    if (ioctl(b.uffd, UFFDIO_API, &api) != 0 || mem == MAP_FAILED || (copy && src == MAP_FAILED)
            || ioctl(b.uffd, UFFDIO_REGISTER, &reg) != 0 || pthread_create(&t, NULL, raw_serve, &b) != 0) {
        err = errno;
        if (mem != MAP_FAILED) {
            munmap(mem, len);
        }
        if (src != MAP_FAILED) {
            munmap(src, len);
        }
        close(b.uffd);
        close(b.stopfd);
        return -err;
    }
    for (int i = 0; i < pages; i++) {
        uint64_t t0 = now_ns();
        (void) *(volatile char *) (mem + (uint64_t) i * PAGE);
        out[i] = now_ns() - t0;
    }
    uint64_t one = 1;
    if (write(b.stopfd, &one, sizeof one) != sizeof one) {
        err = errno;
    }
    pthread_join(t, NULL);
    munmap(mem, len);
    if (copy) {
        munmap(src, len);
    }
    close(b.stopfd);
    close(b.uffd);
    return 0;
}

/* The kernel's own minor fault: the first write to each page of fresh anonymous memory. */
int hm_bench_minor(int pages, uint64_t *out) {
    uint64_t len = (uint64_t) pages * PAGE;
    char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        return -errno;
    }
    madvise(mem, len, MADV_NOHUGEPAGE);
    for (int i = 0; i < pages; i++) {
        uint64_t t0 = now_ns();
        *(volatile char *) (mem + (uint64_t) i * PAGE) = 1;
        out[i] = now_ns() - t0;
    }
    munmap(mem, len);
    return 0;
}
