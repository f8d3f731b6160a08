/**
 * Transparent host faults through userfaultfd: the native fault service (a small C library built
 * with the project, {@code src/main/c/hetmem_uffd.c}, where the argument that it never hangs the
 * JVM is written down) and the host mirror each region in that mode keeps with it.
 */
package dev.hetmem.fault;
