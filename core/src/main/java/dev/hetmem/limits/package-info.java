/**
 * The machine's own limits, measured beside hetmem's numbers so that a benchmark can say how close
 * to the floor it runs: plain copies between native buffers, the kernel's fault round trips, page
 * cache eviction of a file. Nothing here manages memory; the command line's benchmarks use it.
 */
package dev.hetmem.limits;
