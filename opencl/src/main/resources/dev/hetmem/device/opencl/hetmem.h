/*
 * hetmem.h: reaching region arguments from OpenCL C through hetmem's device page table.
 *
 * The driver puts this in front of every program it builds. A kernel declares the address space
 * first, then one HM_REGION per region argument (in the order of the launch's KernelArgs), then
 * its own scalar arguments:
 *
 *     __kernel void scale(HM_SPACE_PARAMS, HM_REGION(x), const float f) {
 *         size_t i = get_global_id(0);
 *         __global float *p = HM_WPTR(float, x, i);
 *         *p = *p * f;
 *     }
 *
 * HM_PTR(T, r, i) is the address of element i (of type T) of region argument r, for reading;
 * HM_WPTR is the same for writing. An address is valid up to the end of its 4 KiB page: elements
 * that never cross a page (sizes that divide 4096, at aligned offsets) are always safe; for longer
 * runs, HM_SAME_PAGE(r, byteOffset, bytes) says whether a run lies in one page and
 * HM_PAGE_LEFT(r, byteOffset) how many bytes remain in the page, so a kernel can translate once
 * per run instead of once per element.
 *
 * An access outside the argument's range, or a write through a read-only entry, does not touch
 * memory: it is redirected to a scratch page and reported, and the launch then throws naming the
 * argument. Building with -DHM_PLAIN turns every argument into a plain buffer (the same kernel
 * without translation): run on regions, its arguments are then plain arguments.
 *
 * A kernel needs none of this to run on regions: an ordinary __global T * parameter takes a region
 * argument as one plain pointer (hetmem places the argument's pages in consecutive device frames
 * first). Both kinds may be mixed: the launch's region arguments fill the kernel's HM_REGION and
 * __global pointer parameters in source order; scalars fill the rest.
 */
#ifndef HETMEM_H
#define HETMEM_H

#define HM_PAGE_SHIFT 12
#define HM_PAGE_BYTES 4096UL

#ifdef HM_PLAIN

#define HM_SPACE_PARAMS __global uint *hm_fault
#define HM_SPACE hm_fault
#define HM_REGION(name) __global uchar *name
#define HM_PTR(T, r, i) ((__global const T *) ((r) + (ulong) (i) * sizeof(T)))
#define HM_WPTR(T, r, i) ((__global T *) ((r) + (ulong) (i) * sizeof(T)))
#define HM_SAME_PAGE(r, off, bytes) 1
#define HM_PAGE_LEFT(r, off) (~0UL)

#else

#ifndef HM_POOLS
#define HM_POOLS 1
#endif

/* Device page-table entry: bit 0 present, bit 1 writable, bits 2-3 pool, bits 4-31 frame in pool. */
#define HM_PRESENT 1u
#define HM_WRITABLE 2u

#if HM_POOLS == 1
#define HM_POOL_PARAMS __global uchar *hm_pool0
#define HM_POOL_ARGS hm_pool0
#define HM_POOL_BASE(e) hm_pool0
#elif HM_POOLS == 2
#define HM_POOL_PARAMS __global uchar *hm_pool0, __global uchar *hm_pool1
#define HM_POOL_ARGS hm_pool0, hm_pool1
#define HM_POOL_BASE(e) ((((e) >> 2) & 3u) ? hm_pool1 : hm_pool0)
#elif HM_POOLS == 3
#define HM_POOL_PARAMS __global uchar *hm_pool0, __global uchar *hm_pool1, __global uchar *hm_pool2
#define HM_POOL_ARGS hm_pool0, hm_pool1, hm_pool2
#define HM_POOL_BASE(e) ((((e) >> 2) & 3u) == 0 ? hm_pool0 : (((e) >> 2) & 3u) == 1 ? hm_pool1 : hm_pool2)
#else
#define HM_POOL_PARAMS __global uchar *hm_pool0, __global uchar *hm_pool1, __global uchar *hm_pool2, __global uchar *hm_pool3
#define HM_POOL_ARGS hm_pool0, hm_pool1, hm_pool2, hm_pool3
#define HM_POOL_BASE(e) ((((e) >> 2) & 3u) == 0 ? hm_pool0 : (((e) >> 2) & 3u) == 1 ? hm_pool1 \
                         : (((e) >> 2) & 3u) == 2 ? hm_pool2 : hm_pool3)
#endif

/* The page table (entries of every argument, one window each), the fault word + scratch page, the pools. */
#define HM_SPACE_PARAMS __global const uint *restrict hm_pt, __global uint *hm_fault, HM_POOL_PARAMS
#define HM_SPACE hm_pt, hm_fault, HM_POOL_ARGS

/*
 * A region argument: x = where the entry of its page p (counted from its first page) is in hm_pt,
 * as x + p; y = the pages it may reach this launch, [HM_WINDOW_FIRST, HM_WINDOW_END) from its first
 * page (a tile's declared window; all its pages otherwise: only their entries are in hm_pt); z = its
 * byte offset in its first page; w = its position (bits 0-15) and its length in bytes (bits 16-63).
 */
#define HM_REGION(name) const ulong4 name
#define HM_POSITION(r) ((uint) ((r).w & 0xFFFFUL))
#define HM_LENGTH(r) ((r).w >> 16)
#define HM_WINDOW_FIRST(r) ((r).y & 0xFFFFFFFFUL)
#define HM_WINDOW_END(r) ((r).y >> 32)

/* Records the first bad access (argument position + 1, and the offset) and hands back the scratch page. */
inline __global uchar *hm_bad(__global uint *hm_fault, ulong4 r, ulong off, uint why) {
    if (atomic_cmpxchg(hm_fault, 0u, HM_POSITION(r) + 1u) == 0u) {
        hm_fault[1] = why;
        hm_fault[2] = (uint) off;
        hm_fault[3] = (uint) (off >> 32);
    }
    return (__global uchar *) (hm_fault + 16);
}

/*
 * The address of the size bytes at byte off of argument r: inside the argument to the byte (an
 * element that starts or ends outside it, in the argument's first or last page too, is refused;
 * a negative index wraps to an offset past the end), in a page of its window, present, and
 * writable where need asks it. Why a refusal: 1 outside the argument, 3 outside the window (a
 * page another tile used, whose frame may hold anything by now), 2 not present or not writable.
 */
inline __global uchar *hm_addr(HM_SPACE_PARAMS, ulong4 r, ulong off, ulong size, uint need) {
    ulong v = r.z + off;
    ulong p = v >> HM_PAGE_SHIFT;
    int inside = off <= HM_LENGTH(r) && size <= HM_LENGTH(r) - off;
    int windowed = inside && p >= HM_WINDOW_FIRST(r) && p < HM_WINDOW_END(r);
    uint e = windowed ? hm_pt[r.x + p] : 0u;
    if ((e & need) != need) {
        return hm_bad(hm_fault, r, off, !inside ? 1u : !windowed ? 3u : 2u);
    }
    return HM_POOL_BASE(e) + ((ulong) (e >> 4) << HM_PAGE_SHIFT) + (v & (HM_PAGE_BYTES - 1));
}

#define HM_PTR(T, r, i) ((__global const T *) hm_addr(HM_SPACE, (r), (ulong) (i) * sizeof(T), sizeof(T), HM_PRESENT))
#define HM_WPTR(T, r, i) ((__global T *) hm_addr(HM_SPACE, (r), (ulong) (i) * sizeof(T), sizeof(T), HM_PRESENT | HM_WRITABLE))
#define HM_SAME_PAGE(r, off, bytes) (((((r).z + (off)) & (HM_PAGE_BYTES - 1)) + (bytes)) <= HM_PAGE_BYTES)
#define HM_PAGE_LEFT(r, off) (HM_PAGE_BYTES - (((r).z + (off)) & (HM_PAGE_BYTES - 1)))

#endif /* HM_PLAIN */
#endif /* HETMEM_H */
