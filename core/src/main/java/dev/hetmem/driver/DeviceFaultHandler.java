package dev.hetmem.driver;

/**
 * The core's side of a device fault (HMM's device fault, UVM's replayable faults): a driver whose
 * kernel touched a page that is not mapped on the device, or wrote one mapped read-only, calls
 * {@link #fault} from the thread that made the access, and retries the access when it returns.
 */
@FunctionalInterface
public interface DeviceFaultHandler {
    /**
     * Makes the page at {@code va} resident on the faulting device, writable if {@code write}, and
     * mapped there; returns when it is. Throws, and the driver fails the launch with that exception,
     * for an address outside every argument of the launch, a write to an argument declared
     * read-only, or a migration that failed (nothing is lost then).
     *
     * <p>Caller's contract: the calling thread holds no translation it will use after the call
     * (it may be waited for by an invalidation of another thread while it is inside). Several
     * work items may call it at once, for the same page or different ones.
     *
     * @param va the host virtual address the work item accessed (any byte of the page)
     * @param write true for a write access, which needs the page mapped writable
     * @throws DeviceFaultException if {@code va} lies outside every argument of the launch (for a
     *         write: outside every argument that may be written), as a driver reports the bounds and
     *         access of its arguments
     * @throws dev.hetmem.ProtectionException if the page was made read-only while the kernel ran
     * @throws dev.hetmem.HetmemException if the migration failed (device memory, copy)
     */
    void fault(long va, boolean write);
}
