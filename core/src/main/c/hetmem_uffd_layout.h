/*
 * The memory layout shared between the userfaultfd fault service (hetmem_uffd.c) and Java
 * (dev.hetmem.fault.HostMirror): defined here once; StateWordLayoutTest checks that the Java
 * constants are these.
 *
 * One 64-bit state word per page of a userfaultfd region, in a table both sides read and write
 * with atomics:
 *
 *   63                                  12 11    7  6      5      4     3    2   1   0
 *  +--------------------------------------+-------+------+------+------+----+------+----+
 *  |  SRC: host address of the device     | BUSY  |MAPPED| HELD |STOLEN| RO | KIND |LOCK|
 *  |  frame holding the page (AWAY only)  | 0..31 |      |      |      |    |      |    |
 *  +--------------------------------------+-------+------+------+------+----+------+----+
 *
 *   LOCK    held by whoever is changing the word or the page's mapping (C only)
 *   KIND    HOST (the view holds the data, or the page is missing and reads as zeros),
 *           AWAY (the view holds nothing; the data is at SRC),
 *           LEAVING (mapped write-protected while being copied off the host or copied home)
 *   RO      the host copy is read-only: the view maps it write-protected
 *   STOLEN  the service took the page home (or let the host write it) on its own; the logical
 *           page table does not know yet (Java collects it)
 *   HELD    (HOST) the page table has the host holding the page; without it the page is untouched
 *   MAPPED  the view maps the page (a hint for neighbours, kept under the page lock)
 *   BUSY    how many running device kernels hold the page, up to 31 (more: counted beside the word,
 *           in the region's busy_more): never taken as a neighbour
 *
 * Beside the words, one byte per 2 MiB block ("this block may have steals") and one more for the
 * whole region, set by the service and cleared by Java when it collects.
 */
#ifndef HETMEM_UFFD_LAYOUT_H
#define HETMEM_UFFD_LAYOUT_H

#define ST_LOCK 1ULL
#define ST_KIND 6ULL
#define K_HOST 0ULL
#define K_AWAY 2ULL
#define K_LEAVING 4ULL
#define ST_RO 8ULL
#define ST_STOLEN 16ULL
#define ST_HELD 32ULL
#define ST_MAPPED 64ULL
#define ST_BUSY 0xF80ULL
#define ST_BUSY_ONE 0x80ULL
#define ST_SRC (~0xFFFULL)

/* hm_sync's kinds: what a range of pages should look like from the host (HostMirror.Want codes) */
#define WANT_HOST 0
#define WANT_HOST_RO 1
#define WANT_AWAY 2
#define WANT_EMPTY 3
#define WANT_DISCARD 4
#define WANT_LOADED 5
#define WANT_HOST_RO_COPIED 6

/* hm_view_pages' bits per page */
#define VIEW_MAPPED 1
#define VIEW_WRITE_PROTECTED 2

/* the service's counters, in hm_service_counters' order (FaultServiceCounters' components) */
#define C_FAULTS 0
#define C_WP_FAULTS 1
#define C_PAGES_COPIED 2
#define C_PAGES_MAPPED 3
#define C_ERRORS 4
#define C_STOLEN 5
#define C_COUNT 8

/* how many regions one service serves at once (FaultService.MAX_REGIONS); one more fails with EMFILE */
#define MAX_REGIONS 1024

#endif
