/**
 * hetmem's API: one address space shared by the host and the devices attached to it, in which each
 * page lives where it is used, as under Linux HMM and NVIDIA UVM. Every type here is thread-safe
 * unless it says otherwise; {@link dev.hetmem.HostView} belongs to the thread that opened it.
 *
 * <pre>{@code
 * try (UnifiedMemory mem = UnifiedMemory.builder()
 *         .device(EmulatedDevice.builder().capacity(64L << 20).build())
 *         .build();
 *      Region r = mem.allocate(16L << 20)) {
 *     try (HostView v = r.host(0, r.size(), Access.WRITE)) {
 *         v.segment().fill((byte) 1);
 *     }
 *     EmulatedKernel twice = (args, i) -> args.arg(0).putInt(4 * i, 2 * args.arg(0).getInt(4 * i));
 *     mem.launch(1, twice, r.size() / 4, KernelArg.readWrite(r));
 *     System.out.println(r.snapshot(0, r.size()));   // PageSnapshot[offset 0: pages 0-4095 node 1 rw]
 * }
 * }</pre>
 *
 * <h2>Nodes</h2>
 * Node 0 is the host. Devices added with {@link dev.hetmem.UnifiedMemory.Builder#device} become
 * nodes 1..n in that order (at most 30); {@link dev.hetmem.UnifiedMemory#nodes()} describes them.
 * A method given a node that the memory lacks throws {@link java.lang.IllegalArgumentException}:
 * {@code long deviceBytes = mem.node(1).capacityBytes();}
 *
 * <h2>Regions, pages and granules</h2>
 * A {@link dev.hetmem.Region} ({@code mem.allocate(bytes)}, up to 64 TiB) is a range of the
 * shared address space, reserved but not populated: a page comes into being, zero-filled, where it
 * is first touched. Offsets and lengths are bytes from the region's start. The <em>page</em>
 * (4 KiB) is the unit of residency, protection and attributes. The <em>granule</em> is the unit of
 * migration: a fault brings the whole aligned granule of the page it hit. It is 2 MiB unless set
 * per memory ({@link dev.hetmem.UnifiedMemory.Builder#granularity}), per region, or per range
 * ({@link dev.hetmem.Advice#granularity}); a power of two from 4 KiB to 1 GiB:
 * {@code Region r = mem.allocate(1L << 30, 64L << 10);   // 1 GiB in 64 KiB granules}
 *
 * <h2>Residency and the single-writer rule</h2>
 * Each page is resident on a set of nodes, and at most one node may write it: while one may, no
 * other holds a copy. A write, and normally a read, moves the page to the node that needs it. Under
 * {@link dev.hetmem.Advice#readMostly} a read from a node that lacks the page makes a read-only
 * copy there instead (read duplication), and the next write collapses the copies to the writer.
 * {@link dev.hetmem.Region#snapshot} shows where pages are, {@link dev.hetmem.Region#attributes}
 * a range's settings: {@code String where = region.snapshot(0, 4096).describe(0);   // "nodes 0,1 ro"}
 *
 * <h2>Host access</h2>
 * The {@link dev.hetmem.HostFaultMode} is chosen when the memory is built. With host views (the
 * default, portable) Java code opens a {@link dev.hetmem.HostView}: its pages come home and stay
 * pinned there until it closes, and a device that needs them waits.
 * <pre>{@code
 * try (HostView v = region.host(0, 4096, Access.READ)) {
 *     int first = v.segment().get(ValueLayout.JAVA_INT, 0);
 * }
 * }</pre>
 * With {@code UnifiedMemory.builder().hostFaults(HostFaultMode.USERFAULTFD)} (Linux only) a region
 * is one mapping, {@link dev.hetmem.Region#segment()} for Java and {@link dev.hetmem.Region#address()}
 * for native code, and plain loads and stores work wherever the page is: a native fault service
 * brings the granule home. Building throws {@link dev.hetmem.UserfaultfdUnavailableException},
 * saying why, where the mode cannot run.
 *
 * <h2>Kernel launches</h2>
 * {@link dev.hetmem.UnifiedMemory#launch mem.launch(node, kernel, globalSize, args...)} runs a kernel
 * over {@code globalSize} work items on a device; each {@link dev.hetmem.KernelArg} names a range and
 * its {@link dev.hetmem.Access}. Arguments that fit the device are made resident there (granule by
 * granule, evicting colder pages) and pinned for the run. When they do not fit, arguments that
 * declare what each work item touches ({@link dev.hetmem.KernelArg#perItem}) let the launch run
 * tile by tile, the next tile prefetched while one runs. Without such windows a device that takes
 * device faults (the emulated device) starts the kernel at once and faults each page in as it is
 * touched; one that cannot (OpenCL) throws {@link dev.hetmem.driver.DeviceMemoryException}.
 * <pre>{@code
 * LaunchResult res = mem.launch(1, rowSums, rows,
 *         KernelArg.read(matrix).perItem(rowBytes), KernelArg.write(sums).perItem(8));
 * }</pre>
 *
 * <h2>Advice</h2>
 * {@link dev.hetmem.Region#advise region.advise(offset, length, advice)} applies
 * {@link dev.hetmem.Advice} to exactly that range:
 * <ul>
 *   <li>{@code Advice.prefetch(node)} moves it (widened to granules) now; see also
 *       {@link dev.hetmem.UnifiedMemory#prefetchAsync} and, for many ranges in one batch,
 *       {@link dev.hetmem.UnifiedMemory#prefetch}.</li>
 *   <li>{@code Advice.dontNeed()} discards its contents: every node's frames go, and it reads zeros.</li>
 *   <li>{@code Advice.readMostly(true)} turns read duplication on.</li>
 *   <li>{@code Advice.preferredLocation(node)}: a full device evicts such pages last; -1 clears it.</li>
 *   <li>{@code Advice.accessedBy(node)}: the device maps the host's copy in place instead of
 *       migrating it, where its driver can reach host memory.</li>
 *   <li>{@code Advice.granularity(bytes)} sets the granule size.</li>
 * </ul>
 * {@code region.advise(0, region.size(), Advice.prefetch(1));}
 *
 * <h2>Protection</h2>
 * {@link dev.hetmem.Region#protect} makes whole pages read-only (or writable again) on the host and
 * on every device. A write view or a written kernel argument over such a page throws
 * {@link dev.hetmem.ProtectionException} and changes nothing:
 * {@code region.protect(0, 4096, Protection.READ_ONLY);}
 *
 * <h2>Device-exclusive access</h2>
 * An argument with {@link dev.hetmem.Access#EXCLUSIVE}, for device atomics, leaves its pages held
 * for that device alone until the host touches them, another device reaches them, or they are made
 * read-only; {@link dev.hetmem.Region#isExclusive} tells whether the hold still stands.
 * <pre>{@code
 * mem.launch(1, histogram, n, KernelArg.read(data), KernelArg.of(bins, 0, bins.size(), Access.EXCLUSIVE));
 * boolean held = bins.isExclusive(0, bins.size(), 1);
 * }</pre>
 *
 * <h2>Freeing</h2>
 * {@link dev.hetmem.Region#free()} (or {@code close()}) frees a region, as {@code Arena.close()}
 * closes an arena: the calling thread's host views of it are closed, it refuses while other
 * threads hold views, and it waits for kernels using it. {@link dev.hetmem.Region#free(long, long)} frees part
 * of one, as munmap does: both edges on granule boundaries (the end may be the region's end), the
 * rest working as before, and later calls that reach the freed bytes throwing
 * {@link java.lang.IllegalStateException}. Closing the memory frees every region.
 * {@code region.free(2L << 20, 2L << 20);   // the second 2 MiB granule}
 *
 * <h2>Eviction and thrashing</h2>
 * A full device makes room by sending its coldest pages home (counted under
 * {@link dev.hetmem.Trigger#EVICTION}), pages that prefer it last. {@code mem.release(node)} sends
 * all its pages home. A block that bounces between nodes too often is held home for a while
 * ({@link dev.hetmem.UnifiedMemory.Builder#thrashHold}, 200 ms by default), devices that can reach
 * host memory mapping it in place meanwhile:
 * {@code UnifiedMemory.builder().thrashHold(Duration.ofMillis(50))}
 *
 * <h2>Statistics and JFR events</h2>
 * {@link dev.hetmem.UnifiedMemory#stats()} and {@link dev.hetmem.Region#stats()} give a
 * {@link dev.hetmem.Stats} snapshot: per node, resident bytes, faults and fault batches, pages
 * migrated in per {@link dev.hetmem.Trigger}, evictions and thrashing events. A launch returns its
 * own {@link dev.hetmem.LaunchResult}; the userfaultfd service has
 * {@link dev.hetmem.FaultServiceCounters}. A flight recording (category "hetmem") gets a
 * {@code dev.hetmem.Fault} event per fault batch and a {@code dev.hetmem.Migration} event per
 * migration batch: {@code System.out.print(mem.stats().format());}
 *
 * <h2>Errors</h2>
 * hetmem's own failures extend {@link dev.hetmem.HetmemException}: a device out of memory, a failed
 * copy, a kernel's illegal access, a refused write ({@link dev.hetmem.ProtectionException}), a host
 * fault mode that cannot run. The memory is then as it was before the call, or as the exception
 * says. As in the JDK, bad arguments throw {@link java.lang.IllegalArgumentException} (a size, a
 * node, a granularity) or {@link java.lang.IndexOutOfBoundsException} (a range outside its region),
 * naming the value and the limit; use of a closed memory, a freed region or freed bytes, or a call
 * that would wait for the caller itself ({@link dev.hetmem.PinnedByCallerException}) throws
 * {@link java.lang.IllegalStateException}.
 * <pre>{@code
 * try (HostView v = region.host(0, 4096, Access.WRITE)) {
 *     v.segment().fill((byte) 0);
 * } catch (ProtectionException e) {
 *     // a page of [0, 4096) is read-only
 * }
 * }</pre>
 */
package dev.hetmem;
