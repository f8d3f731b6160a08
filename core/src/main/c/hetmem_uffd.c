/*
 * hetmem's userfaultfd fault service: HMM's "special CPU entry", in user space.
 *
 * A region in userfaultfd mode is a memfd mapped twice:
 *   - the view: what programs touch (region.segment(), region.address()); registered with
 *     userfaultfd for MISSING, MINOR and WP faults;
 *   - the alias: what hetmem itself reads and writes (copies, host views, the loader); never
 *     registered, so it never faults into the service.
 * Both map the same page cache, so data written through one is seen through the other. The view
 * is a mirror of the logical page table's host column, exactly as a device page table is: a page
 * is mapped in the view only while the host holds it.
 *
 * Every page has a 64-bit state word in a table shared with Java (off-heap, NORESERVE, so only
 * touched parts cost memory):
 *   bit 0      LOCK     held by whoever is changing the word or the page's mappings
 *   bits 1-2   kind     HOST (alias holds the data, or a hole that reads as zeros),
 *                       AWAY (the alias holds nothing; the data is at the address in bits 12-63:
 *                             a device frame the host can read),
 *                       LEAVING (a migration is copying the page out; the alias still holds it)
 *   bit 3      RO       host copy is read-only: the view maps it write-protected
 *   bit 5      HELD     (HOST) the page table has the host holding the page; without it a
 *                       HOST page is untouched: nobody holds it and it reads as zeros
 *   bit 4      STOLEN   the service took the page home (or let the host write it) on its own;
 *                       Java has not yet made the logical page table agree (see hm_collect)
 *   bit 6      MAPPED   hint: the view maps the page
 *   bits 7-11  BUSY     how many running device kernels hold the page (31 sticks): not taken as a
 *                       fault's neighbour
 *
 * WHY THIS NEVER HANGS THE JVM (the argument the design rests on)
 * A Java thread that faults on the view from Java code is "in Java" while blocked in the kernel,
 * so it holds up every safepoint until its fault is resolved. Resolution therefore must not wait,
 * directly or indirectly, for anything that itself waits for a safepoint. Here:
 *   1. The service is a pthread created in C. It never attaches to the JVM and never runs Java
 *      code, so it never stops at a safepoint.
 *   2. To resolve a fault it needs only: the region table lock (svc->lock), page locks, memcpy,
 *      and userfaultfd ioctls.
 *   3. svc->lock is taken only inside functions of this file, by the service or by a Java thread
 *      inside a downcall (which the JVM treats as safepoint-safe: the thread keeps running native
 *      code through any safepoint and blocks, if at all, only when it returns to Java). Each such
 *      function releases it before returning. So a holder is always running C code of this file.
 *   4. Page locks likewise are taken and released within one function of this file; none is held
 *      across a return to Java. While holding them, functions only copy memory, call madvise or
 *      userfaultfd ioctls, and take further page locks in ascending address order (svc->lock, when
 *      needed, is taken before any page lock). The memory they copy from and to (device frames, the
 *      alias) is never registered with userfaultfd, so those copies cannot fault into the service.
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

/* newer than some distributions' headers */
#ifndef UFFD_FEATURE_MINOR_SHMEM
#define UFFD_FEATURE_MINOR_SHMEM (1 << 10)
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1)
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#define PAGE 4096ULL
#define ALIGN (2ULL << 20)

#define ST_LOCK 1ULL
#define ST_KIND 6ULL
#define K_HOST 0ULL
#define K_AWAY 2ULL
#define K_LEAVING 4ULL
#define ST_RO 8ULL
#define ST_STOLEN 16ULL
#define ST_HELD 32ULL
#define ST_BUSY 0xF80ULL
#define ST_BUSY_ONE 0x80ULL
#define ST_MAPPED 64ULL
#define ST_SRC (~0xFFFULL)

/* hm_sync kinds */
#define WANT_HOST 0
#define WANT_HOST_RO 1
#define WANT_AWAY 2
#define WANT_EMPTY 3

/* counters */
#define C_FAULTS 0
#define C_WP_FAULTS 1
#define C_PAGES_COPIED 2
#define C_PAGES_MAPPED 3
#define C_ERRORS 4
#define C_STOLEN 5
#define C_COUNT 8

/* why hm_service_open failed (negative return values) */
#define E_SYSCALL -1 /* userfaultfd(2) and /dev/userfaultfd both refused: errno tells why */
#define E_API -2     /* UFFDIO_API refused */
#define E_FEATURES -3 /* the kernel lacks MINOR_SHMEM or WP on shmem */
#define E_THREAD -4

#define MAX_REGIONS 1024

struct hm_service;

struct hm_region {
    uint64_t view;
    uint64_t alias;
    uint64_t length; /* whole pages */
    uint64_t pages;
    uint64_t *state;
    uint8_t *flags; /* one byte per 2 MiB block: some page has STOLEN set; then one for the region */
    uint64_t flags_bytes;
    uint32_t granule_pages;
    int memfd;
    int dead;
    struct hm_service *svc;
};

struct hm_service {
    int uffd;
    int stopfd;
    pthread_t thread;
    pthread_mutex_t lock; /* guards regions[]; see the argument above */
    struct hm_region *regions[MAX_REGIONS];
    uint64_t counters[C_COUNT];
};

static inline void bump(struct hm_service *s, int which, uint64_t n) {
    __atomic_fetch_add(&s->counters[which], n, __ATOMIC_RELAXED);
}

/* ---- page locks ---------------------------------------------------------------------------- */

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

/* The block's flag, then the region's summary flag (the byte after the last block's). */
static inline void mark_stolen(struct hm_region *r, uint64_t page) {
    __atomic_store_n(&r->flags[page >> 9], 1, __ATOMIC_RELEASE);
    __atomic_store_n(&r->flags[(r->pages + 511) / 512], 1, __ATOMIC_RELEASE);
}

/* ---- the view's mappings ------------------------------------------------------------------- */

/*
 * Maps [first, first+count) of the view onto the page cache; pages already mapped are skipped
 * (*skipped is set: the kernel woke nobody waiting on those). Wakes threads waiting on the rest.
 */
static int map_run(struct hm_region *r, uint64_t first, uint64_t count, int ro, int *skipped) {
    uint64_t done = 0;
    while (done < count) {
        struct uffdio_continue c;
        memset(&c, 0, sizeof c);
        c.range.start = r->view + (first + done) * PAGE;
        c.range.len = (count - done) * PAGE;
        c.mode = ro ? UFFDIO_CONTINUE_MODE_WP : 0;
        if (ioctl(r->svc->uffd, UFFDIO_CONTINUE, &c) == 0) {
            bump(r->svc, C_PAGES_MAPPED, count - done);
            return 0;
        }
        int64_t mapped = c.mapped > 0 ? c.mapped : 0;
        if (errno == EEXIST || c.mapped == -EEXIST) {
            /* a page already mapped stops the call: skip it and go on */
            done += (uint64_t) mapped / PAGE + 1;
            *skipped = 1;
            continue;
        }
        if (errno == EAGAIN) {
            done += (uint64_t) mapped / PAGE;
            continue;
        }
        bump(r->svc, C_ERRORS, 1);
        return -errno;
    }
    return 0;
}

static void wake(struct hm_service *s, uint64_t addr) {
    struct uffdio_range w = {addr & ~(PAGE - 1), PAGE};
    ioctl(s->uffd, UFFDIO_WAKE, &w);
}

static int write_protect(struct hm_region *r, uint64_t first, uint64_t count, int on) {
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

/* Makes sure the page cache holds a page at the alias (a hole is filled with zeros by the kernel). */
static inline void touch_alias(struct hm_region *r, uint64_t page) {
    (void) *(volatile char *) (r->alias + page * PAGE);
}

/* ---- the service ----------------------------------------------------------------------------- */

static struct hm_region *region_of(struct hm_service *s, uint64_t addr) {
    for (int i = 0; i < MAX_REGIONS; i++) {
        struct hm_region *r = s->regions[i];
        if (r && addr >= r->view && addr < r->view + r->length) {
            return r;
        }
    }
    return NULL;
}

/*
 * Copies [first, first+count) home from the device frames at srcs[] straight into the view with
 * UFFDIO_COPY: the kernel allocates each page-cache page and fills it from the frame, with no
 * zeroing and no fault on the alias (what memcpy into the alias would cost: about half of a 4 KiB
 * fault, and most of a 2 MiB one). Frames that follow each other go in one call. A page the page
 * cache already holds (EEXIST: nothing else should have filled an AWAY page, but the view must
 * not be left unmapped if it happens) is written through the alias and mapped like a HOST page.
 */
static int copy_run(struct hm_region *r, uint64_t first, uint64_t count, const uint64_t *srcs, int ro, int *skipped) {
    uint64_t i = 0;
    while (i < count) {
        uint64_t j = i + 1;
        while (j < count && srcs[j] == srcs[j - 1] + PAGE) {
            j++;
        }
        struct uffdio_copy c;
        memset(&c, 0, sizeof c);
        c.dst = r->view + (first + i) * PAGE;
        c.src = srcs[i];
        c.len = (j - i) * PAGE;
        c.mode = ro ? UFFDIO_COPY_MODE_WP : 0;
        if (ioctl(r->svc->uffd, UFFDIO_COPY, &c) == 0) {
            i = j;
            continue;
        }
        uint64_t done = c.copy > 0 ? (uint64_t) c.copy / PAGE : 0;
        if (errno == EAGAIN) {
            i += done;
            continue;
        }
        if (errno != EEXIST && c.copy != -EEXIST) {
            bump(r->svc, C_ERRORS, 1);
            return -errno;
        }
        uint64_t at = i + done;
        memcpy((void *) (r->alias + (first + at) * PAGE), (const void *) srcs[at], PAGE);
        int e = map_run(r, first + at, 1, ro, skipped);
        if (e != 0) {
            return e;
        }
        i = at + 1;
    }
    return 0;
}

/* A missing or minor fault at page fp: the granule around it comes home. svc->lock is held. */
static void resolve(struct hm_region *r, uint64_t fp) {
    uint64_t g = r->granule_pages;
    uint64_t g0 = fp - fp % g;
    uint64_t g1 = g0 + g < r->pages ? g0 + g : r->pages;
    int woke = 0;
    uint64_t p = g0;
    while (p < g1) {
        /* one run: consecutive pages that come home the same way (copied from device frames, or
           mapped from the page cache) with the same protection, locked until mapped */
        uint64_t run = p;
        int ro = -1;
        int copying = -1;
        uint64_t held[512];
        uint64_t srcs[512];
        uint64_t n = 0;
        while (p < g1 && n < 512) {
            uint64_t *w = &r->state[p];
            uint64_t v = lock_page(w);
            uint64_t kind = v & ST_KIND;
            if (!r->dead && p != fp && (((v & ST_BUSY) && kind != K_HOST) || (kind == K_HOST && (v & ST_MAPPED)))) {
                /* a running kernel holds it, or the view maps it already: only the faulting page
                   itself is taken regardless */
                unlock_page(w, v);
                p++;
                break;
            }
            int copy = !r->dead && kind == K_AWAY;
            /* what the word becomes; pages coming from elsewhere come home writable */
            uint64_t nv = v;
            if (copy) {
                nv = (v & (ST_BUSY | ST_LOCK)) | K_HOST | ST_HELD | ST_STOLEN;
            } else if (!r->dead && kind == K_LEAVING) {
                nv = (v & ~(ST_KIND | ST_RO)) | K_HOST | ST_HELD | ST_STOLEN;
            } else if (!r->dead && !(v & ST_HELD)) {
                /* a first touch: the host now holds the page, and the page table must hear of it */
                nv = v | ST_HELD | ST_STOLEN;
            }
            int pro = (nv & ST_RO) != 0;
            if (n > 0 && (pro != ro || copy != copying)) {
                /* unchanged: the next run starts with this page */
                unlock_page(w, v);
                break;
            }
            if (copy) {
                srcs[n] = v & ST_SRC;
                bump(r->svc, C_PAGES_COPIED, 1);
            } else if (r->dead || kind == K_HOST) {
                touch_alias(r, p);
            }
            if ((nv & ST_STOLEN) && !(v & ST_STOLEN)) {
                bump(r->svc, C_STOLEN, 1);
                mark_stolen(r, p);
            }
            ro = pro;
            copying = copy;
            held[n++] = nv | ST_MAPPED;
            p++;
        }
        if (n > 0) {
            int skipped = 0;
            int rc = copying == 1 ? copy_run(r, run, n, srcs, ro == 1, &skipped) : map_run(r, run, n, ro == 1, &skipped);
            if (rc == 0 && !skipped && fp >= run && fp < run + n) {
                woke = 1;
            }
            for (uint64_t i = 0; i < n; i++) {
                unlock_page(&r->state[run + i], held[i]);
            }
        }
    }
    if (!woke) {
        wake(r->svc, r->view + fp * PAGE);
    }
}

/* A write to a write-protected page: the host becomes its only writer. svc->lock is held. */
static void resolve_write(struct hm_region *r, uint64_t fp) {
    uint64_t *w = &r->state[fp];
    uint64_t v = lock_page(w);
    if (v & ST_RO) {
        v = (v & ~ST_RO) | ST_STOLEN;
        bump(r->svc, C_STOLEN, 1);
        mark_stolen(r, fp);
    }
    write_protect(r, fp, 1, 0); /* also wakes the writer */
    unlock_page(w, v);
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t) t.tv_sec * 1000000000ULL + (uint64_t) t.tv_nsec;
}

/* How long the service polls without sleeping after a fault. */
#define SPIN_NS 50000ULL

static void *serve(void *arg) {
    struct hm_service *s = arg;
    struct uffd_msg msgs[16];
    for (;;) {
        /* faults come in bursts (a thread walking through pages): right after one, poll without
           sleeping for a little while, so the next is read without a wake-up from idle (tens of
           microseconds on a virtual machine) */
        ssize_t got = -1;
        uint64_t until = now_ns() + SPIN_NS;
        while ((got = read(s->uffd, msgs, sizeof msgs)) < 0 && errno == EAGAIN && now_ns() < until) {
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
            got = read(s->uffd, msgs, sizeof msgs);
        }
        if (got <= 0) {
            continue;
        }
        for (ssize_t i = 0; i < got / (ssize_t) sizeof msgs[0]; i++) {
            struct uffd_msg *m = &msgs[i];
            if (m->event != UFFD_EVENT_PAGEFAULT) {
                continue;
            }
            uint64_t addr = m->arg.pagefault.address;
            pthread_mutex_lock(&s->lock);
            struct hm_region *r = region_of(s, addr);
            if (r == NULL) {
                bump(s, C_ERRORS, 1);
            } else {
                uint64_t page = (addr - r->view) / PAGE;
                if ((m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) && !r->dead) {
                    bump(s, C_WP_FAULTS, 1);
                    resolve_write(r, page);
                } else {
                    bump(s, C_FAULTS, 1);
                    resolve(r, page);
                }
            }
            pthread_mutex_unlock(&s->lock);
        }
    }
}

/* ---- opening ----------------------------------------------------------------------------------- */

static const uint64_t NEEDED = UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;

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
    struct uffdio_api api = {.api = UFFD_API, .features = NEEDED};
    if (ioctl(fd, UFFDIO_API, &api) != 0) {
        *err = errno;
        close(fd);
        /* an old kernel refuses features it does not know: tell that apart from other failures */
        return *err == EINVAL ? E_FEATURES : E_API;
    }
    if ((api.features & NEEDED) != NEEDED) {
        close(fd);
        *err = 0;
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
    struct hm_service *s = calloc(1, sizeof *s);
    if (s == NULL) {
        close(fd);
        *code = E_THREAD;
        *err = ENOMEM;
        return NULL;
    }
    s->uffd = fd;
    s->stopfd = eventfd(0, EFD_CLOEXEC);
    pthread_mutex_init(&s->lock, NULL);
    if (s->stopfd < 0 || pthread_create(&s->thread, NULL, serve, s) != 0) {
        *code = E_THREAD;
        *err = errno ? errno : EAGAIN;
        if (s->stopfd >= 0) {
            close(s->stopfd);
        }
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
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void hm_service_counters(struct hm_service *s, uint64_t *out) {
    for (int i = 0; i < C_COUNT; i++) {
        out[i] = __atomic_load_n(&s->counters[i], __ATOMIC_RELAXED);
    }
}

/* ---- regions ------------------------------------------------------------------------------------ */

static uint64_t map_aligned(uint64_t length, int fd) {
    uint64_t ask = length + ALIGN;
    char *raw = mmap(NULL, ask, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) {
        return 0;
    }
    uint64_t aligned = ((uint64_t) raw + ALIGN - 1) & ~(ALIGN - 1);
    if (mmap((void *) aligned, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
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
    if (r->alias) {
        munmap((void *) r->alias, r->length);
    }
    if (r->state) {
        munmap(r->state, r->pages * 8);
    }
    if (r->flags) {
        munmap(r->flags, r->flags_bytes);
    }
    if (r->memfd >= 0) {
        close(r->memfd);
    }
    free(r);
}

/*
 * A region of length bytes (whole pages): out[0] view, out[1] alias, out[2] state table,
 * out[3] block flags. NULL with *err = errno on failure, nothing left behind.
 */
struct hm_region *hm_region_create(struct hm_service *s, uint64_t length, uint32_t granule_pages, uint64_t *out,
                                   int *err) {
    struct hm_region *r = calloc(1, sizeof *r);
    if (r == NULL) {
        *err = ENOMEM;
        return NULL;
    }
    r->svc = s;
    r->memfd = -1;
    r->length = (length + PAGE - 1) & ~(PAGE - 1);
    r->pages = r->length / PAGE;
    r->granule_pages = granule_pages ? granule_pages : 1;
    r->flags_bytes = ((r->pages + 511) / 512 + 1 + PAGE - 1) & ~(PAGE - 1);
    r->memfd = (int) syscall(SYS_memfd_create, "hetmem-region", MFD_CLOEXEC);
    if (r->memfd < 0 || ftruncate(r->memfd, (off_t) r->length) != 0) {
        goto fail;
    }
    r->view = map_aligned(r->length, r->memfd);
    r->alias = r->view ? map_aligned(r->length, r->memfd) : 0;
    if (!r->alias) {
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
    struct uffdio_register reg = {
            .range = {r->view, r->length},
            .mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP};
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
    }
    pthread_mutex_unlock(&s->lock);
    if (slot < 0) {
        struct uffdio_range range = {r->view, r->length};
        ioctl(s->uffd, UFFDIO_UNREGISTER, &range);
        errno = EMFILE;
        goto fail;
    }
    out[0] = r->view;
    out[1] = r->alias;
    out[2] = (uint64_t) r->state;
    out[3] = (uint64_t) r->flags;
    return r;
fail:
    *err = errno;
    unmap_region(r);
    return NULL;
}

void hm_region_granule(struct hm_region *r, uint32_t pages) {
    __atomic_store_n(&r->granule_pages, pages ? pages : 1, __ATOMIC_RELEASE);
}

/*
 * The region is being freed: from now on a fault maps whatever the alias holds (zeros where it
 * holds nothing) and reads no device frame, so those frames may be freed once this returns.
 */
void hm_region_kill(struct hm_region *r) {
    pthread_mutex_lock(&r->svc->lock);
    r->dead = 1;
    pthread_mutex_unlock(&r->svc->lock);
}

/* Unregisters and unmaps the region; no thread may touch its view or alias any more. */
void hm_region_destroy(struct hm_region *r) {
    struct hm_service *s = r->svc;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < MAX_REGIONS; i++) {
        if (s->regions[i] == r) {
            s->regions[i] = NULL;
        }
    }
    struct uffdio_range range = {r->view, r->length};
    ioctl(s->uffd, UFFDIO_UNREGISTER, &range);
    pthread_mutex_unlock(&s->lock);
    unmap_region(r);
}

/* ---- transitions asked for by the migration engine (Java holds the block locks) ---------------- */

/*
 * The host's copy of [first, first+count) is about to be copied out: pages become LEAVING and
 * leave the view, so that a host touch from now on faults (and takes the page back, STOLEN).
 * Pages already STOLEN stay as they are. Returns 0 or -errno.
 */
int hm_leave(struct hm_region *r, uint64_t first, uint64_t count) {
    int any_ro = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t *w = &r->state[first + i];
        uint64_t v = lock_page(w);
        if ((v & ST_KIND) == K_HOST && !(v & ST_STOLEN)) {
            any_ro |= (v & ST_RO) != 0;
            v = (v & ST_BUSY) | K_LEAVING | ST_LOCK;
        }
        unlock_page(w, v);
    }
    int rc = 0;
    if (any_ro) {
        rc = write_protect(r, first, count, 0);
    }
    /* a shared mapping: this only drops the view's entries; the page cache keeps the data */
    if (madvise((void *) (r->view + first * PAGE), count * PAGE, MADV_DONTNEED) != 0) {
        bump(r->svc, C_ERRORS, 1);
        rc = -errno;
    }
    return rc;
}

/*
 * Device-to-host copy of AWAY pages: srcs[i] is where page first+i is now (a device frame the
 * host can read; 0 = skip). Copied pages become LEAVING: the alias holds them, the view does not
 * map them until hm_sync (or a fault) does. Pages the service took meanwhile are not overwritten.
 */
int hm_home(struct hm_region *r, uint64_t first, uint64_t count, const uint64_t *srcs) {
    for (uint64_t i = 0; i < count; i++) {
        uint64_t *w = &r->state[first + i];
        uint64_t v = lock_page(w);
        if ((v & ST_KIND) == K_AWAY && !(v & ST_STOLEN) && srcs[i] != 0) {
            memcpy((void *) (r->alias + (first + i) * PAGE), (const void *) srcs[i], PAGE);
            v = (v & ST_BUSY) | K_LEAVING | ST_LOCK;
        }
        unlock_page(w, v);
    }
    return 0;
}

static int punch(struct hm_region *r, uint64_t first, uint64_t count) {
    if (count == 0) {
        return 0;
    }
    if (madvise((void *) (r->alias + first * PAGE), count * PAGE, MADV_REMOVE) != 0) {
        bump(r->svc, C_ERRORS, 1);
        return -errno;
    }
    return 0;
}

/*
 * Makes the view mirror the logical page table for [first, first+count) (at most 512 pages):
 * WANT_HOST / WANT_HOST_RO: the host holds the pages (read-only: write-protected in the view);
 * WANT_AWAY: only devices hold them, srcs[i] is a frame the host can read (the alias is emptied);
 * WANT_EMPTY: nobody holds them: they read as zeros. STOLEN pages are left alone (the host took
 * them after Java last looked; hm_collect tells Java). Returns 0, -errno, or -EPROTO when a page
 * asked to be HOST has no data on the host (a caller bug).
 */
int hm_sync(struct hm_region *r, uint64_t first, uint64_t count, int want, const uint64_t *srcs) {
    if (count > 512) {
        return -E2BIG;
    }
    uint64_t old[512];
    lock_range(r, first, count, old);
    int rc = 0;
    int unprotect = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t v = old[i];
        if (v & ST_STOLEN) {
            continue;
        }
        uint64_t kind = v & ST_KIND;
        uint64_t keep = v & (ST_BUSY | ST_LOCK);
        switch (want) {
            case WANT_HOST:
            case WANT_HOST_RO:
                if (kind == K_AWAY) {
                    rc = -EPROTO;
                    continue;
                }
                unprotect |= want == WANT_HOST && (v & ST_RO);
                old[i] = keep | K_HOST | ST_HELD | (want == WANT_HOST_RO ? ST_RO : 0)
                        | (kind == K_HOST ? v & ST_MAPPED : 0);
                break;
            case WANT_AWAY:
                old[i] = keep | K_AWAY | (srcs[i] & ST_SRC);
                break;
            default:
                old[i] = keep | K_HOST;
                break;
        }
    }
    /* host data goes where nobody on the host holds the page any more (never a STOLEN page's) */
    if (want == WANT_AWAY || want == WANT_EMPTY) {
        uint64_t i = 0;
        while (i < count) {
            while (i < count && (old[i] & ST_STOLEN)) {
                i++;
            }
            uint64_t j = i;
            while (j < count && !(old[j] & ST_STOLEN)) {
                j++;
            }
            int e = punch(r, first + i, j - i);
            rc = rc ? rc : e;
            i = j;
        }
    } else if (want == WANT_HOST_RO) {
        int e = write_protect(r, first, count, 1);
        rc = rc ? rc : e;
    } else if (unprotect) {
        int e = write_protect(r, first, count, 0);
        rc = rc ? rc : e;
    }
    for (uint64_t i = 0; i < count; i++) {
        unlock_page(&r->state[first + i], old[i]);
    }
    return rc;
}

/*
 * Pages of block b the service took since the last call (STOLEN, and not BUSY): their bits go
 * to out[0..7] and are cleared. Returns how many.
 */
int hm_collect(struct hm_region *r, uint64_t block, uint64_t *out) {
    memset(out, 0, 64);
    if (!__atomic_load_n(&r->flags[block], __ATOMIC_ACQUIRE)) {
        return 0;
    }
    /* clear first: a steal after this sets it again */
    __atomic_store_n(&r->flags[block], 0, __ATOMIC_RELEASE);
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
        if ((v & ST_STOLEN) && !(v & ST_BUSY)) {
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

/* Marks pages a running kernel holds (on != 0) or no longer holds. */
void hm_busy(struct hm_region *r, uint64_t first, uint64_t count, int on) {
    for (uint64_t i = 0; i < count; i++) {
        uint64_t *w = &r->state[first + i];
        uint64_t v = lock_page(w);
        uint64_t b = v & ST_BUSY;
        if (b != ST_BUSY) { /* a count that reached 31 stays: the page is never taken as a neighbour */
            if (on) {
                v += ST_BUSY_ONE;
            } else if (b != 0) {
                v -= ST_BUSY_ONE;
            }
        }
        unlock_page(w, v);
        if (!on && !(v & ST_BUSY) && (v & ST_STOLEN)) {
            mark_stolen(r, first + i);
        }
    }
}

/* ---- limits for `hetmem bench fault` ------------------------------------------------------------ */


struct raw_bench {
    int uffd;
    int stopfd;
    /* shared: the page is filled from src by UFFDIO_COPY into a memfd mapping (the service's own
       way for a page coming home); otherwise the zero page goes into anonymous memory */
    int shared;
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
        if (b->shared) {
            struct uffdio_copy c = {.dst = at, .src = (uint64_t) b->src + (at - b->base), .len = PAGE, .mode = 0};
            ioctl(b->uffd, UFFDIO_COPY, &c);
        } else {
            struct uffdio_zeropage z = {{at, PAGE}, 0, 0};
            ioctl(b->uffd, UFFDIO_ZEROPAGE, &z);
        }
    }
}

/*
 * The bare userfaultfd round trip: a thread reads a missing page, a handler thread (the service's
 * loop: a short spin, then poll) resolves it. shared = 0: anonymous memory, the zero page;
 * shared = 1: a memfd mapping like a region's view, the page copied in by UFFDIO_COPY from a
 * buffer, as the service brings a device page home. out[i]: ns for touch i.
 */
int hm_bench_raw(int pages, int shared, uint64_t *out) {
    int err;
    struct raw_bench b;
    memset(&b, 0, sizeof b);
    b.shared = shared;
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
    int fd = -1;
    char *mem = MAP_FAILED;
    char *src = MAP_FAILED;
    if (shared) {
        fd = (int) syscall(SYS_memfd_create, "hetmem-bench", MFD_CLOEXEC);
        if (fd >= 0 && ftruncate(fd, (off_t) len) == 0) {
            mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        }
        src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    } else {
        mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }
    b.src = src;
    b.base = (uint64_t) mem;
    struct uffdio_register reg = {.range = {(uint64_t) mem, len}, .mode = UFFDIO_REGISTER_MODE_MISSING};
    b.stopfd = eventfd(0, EFD_CLOEXEC);
    pthread_t t;
    if (ioctl(b.uffd, UFFDIO_API, &api) != 0 || mem == MAP_FAILED || (shared && src == MAP_FAILED)
            || ioctl(b.uffd, UFFDIO_REGISTER, &reg) != 0 || pthread_create(&t, NULL, raw_serve, &b) != 0) {
        err = errno;
        if (mem != MAP_FAILED) {
            munmap(mem, len);
        }
        if (src != MAP_FAILED) {
            munmap(src, len);
        }
        if (fd >= 0) {
            close(fd);
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
    if (shared) {
        munmap(src, len);
        close(fd);
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
