package dev.hetmem.fault;

import dev.hetmem.FaultServiceCounters;
import dev.hetmem.HostFaultMode;
import dev.hetmem.UserfaultfdUnavailableException;
import dev.hetmem.driver.DeviceDriver;
import dev.hetmem.host.HostSide;
import dev.hetmem.host.HostSides;

import java.util.List;

import static dev.hetmem.driver.PageGeometry.pagesFor;

/** Regions whose host side is a userfaultfd view served by one {@link FaultService} per memory. */
public final class UserfaultfdSides implements HostSides {
    private final FaultService service;

    private UserfaultfdSides(FaultService service) {
        this.service = service;
    }

    /**
     * Starts the fault service for a memory with these devices, or throws saying why userfaultfd
     * cannot run here: every device's frames must be readable by the host in place, since the
     * service copies pages home without Java.
     */
    public static UserfaultfdSides open(List<DeviceDriver> drivers) {
        for (DeviceDriver d : drivers) {
            if (d.hostAddress(0) == 0) {
                throw new UserfaultfdUnavailableException("userfaultfd host faults need every device's memory to be "
                        + "readable by the host in place (the fault service copies pages home without Java); device "
                        + d.name() + " (" + d.kind() + ") is not: use HostFaultMode.HOST_VIEWS with it");
            }
        }
        return new UserfaultfdSides(FaultService.open());
    }

    @Override
    public HostSide create(long bytes, int granulePages) {
        return new UserfaultfdSide(service.createRegion(bytes, granulePages, pagesFor(bytes)), bytes);
    }

    @Override
    public HostFaultMode mode() {
        return HostFaultMode.USERFAULTFD;
    }

    @Override
    public FaultServiceCounters counters() {
        return service.counters();
    }

    @Override
    public long retainedBytes() {
        return 0;
    }

    @Override
    public void trim() {
        // nothing kept: frames of pages that left are dropped as they leave
    }

    @Override
    public void close() {
        service.close();
    }
}
