package dev.hetmem;

import dev.hetmem.driver.DeviceKernel;
import dev.hetmem.driver.KernelBinding;
import dev.hetmem.driver.PageGeometry;
import dev.hetmem.internal.DeviceNode;
import dev.hetmem.internal.Pins;
import dev.hetmem.internal.RegionState;
import dev.hetmem.migrate.MigrationEngine;
import dev.hetmem.migrate.MigrationRequest;
import dev.hetmem.observe.FaultEvent;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;

/**
 * {@link UnifiedMemory#launch}: GMEM's device fault before the kernel runs. Every argument's range
 * is made resident on the device with the access it declares and pinned there for the run (regions
 * entered in ascending id, so two launches never wait for each other's regions in opposite order),
 * then the driver runs the kernel, then the pins and regions are let go.
 */
final class KernelLaunch {
    private final UnifiedMemory memory;

    KernelLaunch(UnifiedMemory memory) {
        this.memory = memory;
    }

    LaunchResult launch(DeviceNode dev, int node, DeviceKernel kernel, long globalSize, KernelArg... args) {
        Objects.requireNonNull(kernel, "kernel");
        Objects.requireNonNull(args, "args");
        if (globalSize < 1) {
            throw new IllegalArgumentException("global size " + globalSize + " must be at least 1");
        }
        memory.checkOpen();
        List<MigrationRequest> requests = new ArrayList<>(args.length);
        List<KernelBinding> bindings = new ArrayList<>(args.length);
        List<RegionState> entered = new ArrayList<>();
        for (KernelArg a : args) {
            Objects.requireNonNull(a, "kernel argument");
            memory.checkMine(a.region());
            Checks.range(a.offset(), a.length(), a.region().size(), a.region());
            RegionState s = a.region().state();
            long from = a.offset() >>> PageGeometry.PAGE_SHIFT;
            long to = Math.ceilDiv(a.offset() + a.length(), PageGeometry.PAGE_BYTES);
            if (a.access().writes()) {
                long ro = s.attributes().firstReadOnly(from, to);
                if (ro >= 0) {
                    throw new ProtectionException("kernel argument writes [" + a.offset() + ", " + (a.offset() + a.length())
                            + ") of " + a.region() + " but the page at offset " + (ro << PageGeometry.PAGE_SHIFT) + " is read-only");
                }
            }
            requests.add(new MigrationRequest(s, from, to, a.access().writes()));
            bindings.add(new KernelBinding(s.pageAddress(0) + a.offset(), a.length(), a.access()));
            if (!entered.contains(s)) {
                entered.add(s);
            }
        }
        entered.sort(Comparator.comparingInt(RegionState::id));
        int enteredCount = 0;
        List<Pins.Pin> pins = List.of();
        try {
            for (RegionState s : entered) {
                s.lifecycle().enter();
                enteredCount++;
            }
            FaultEvent event = new FaultEvent();
            event.begin();
            long t0 = System.nanoTime();
            MigrationEngine.Outcome out = memory.engine().ensure(requests, node, Trigger.FAULT, MigrationEngine.Pinning.PIN,
                    MigrationEngine.FROM_ANY_NODE);
            pins = out.pins();
            long t1 = System.nanoTime();
            if (out.faults() > 0) {
                memory.counters().fault(node, out.faults());
                for (MigrationRequest r : requests) {
                    // per region: faults are attributed to the first region of the launch that had work
                    r.region().counters().fault(node, out.faults());
                    break;
                }
                if (event.shouldCommit()) {
                    event.path = FaultEvent.KERNEL;
                    event.node = node;
                    event.region = requests.getFirst().region().id();
                    event.offset = args[0].offset();
                    event.length = args[0].length();
                    event.faults = out.faults();
                    event.pagesMigrated = out.pagesMigrated();
                    event.commit();
                }
            }
            dev.driver().execute(kernel, globalSize, bindings);
            long t2 = System.nanoTime();
            return new LaunchResult(out.pagesTouched(), out.faults(), out.pagesMigrated(),
                    out.pagesMigrated() << PageGeometry.PAGE_SHIFT, t1 - t0, t2 - t1);
        } finally {
            for (int i = 0; i < pins.size(); i++) {
                requests.get(i).region().unpin(pins.get(i));
            }
            for (int i = 0; i < enteredCount; i++) {
                entered.get(i).lifecycle().exit();
            }
        }
    }
}
