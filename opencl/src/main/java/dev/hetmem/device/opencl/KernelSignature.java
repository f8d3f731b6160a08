package dev.hetmem.device.opencl;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * How a kernel's parameters take a launch's arguments, read once from the parameters its source
 * declares ({@link KernelParameter}):
 *
 * <pre>
 *   translated kernel (it starts with HM_SPACE_PARAMS):
 *     | hm_pt | hm_fault | pool 0 .. pool P-1 | slots and scalars, in source order |
 *   hetmem.h kernel built with -DHM_PLAIN (HM_SPACE_PARAMS is the fault word alone):
 *     | hm_fault | slots and scalars, in source order |
 *   ordinary kernel (no hetmem.h in its signature):
 *     | slots and scalars, in source order |
 * </pre>
 *
 * A <em>slot</em> is a parameter a region argument can fill: an {@code HM_REGION} ({@code ulong4},
 * in translated kernels) reaches its argument through the device page table; a {@code __global}
 * or {@code __constant} pointer reaches it plainly, as one buffer over the consecutive frames the
 * core placed it in. The launch's region arguments fill the first slots, in order; every other
 * parameter (pointer slots left over included, for plain buffers) takes the next scalar; an
 * {@code HM_REGION} left over is refused (a value there would be a forged region descriptor). Where the
 * platform gives no argument information ({@code known} false), a kernel is taken as translated
 * with its region arguments right after the hidden parameters, as before argument information.
 *
 * @param known      whether the platform described the parameters
 * @param translated whether the kernel starts with HM_SPACE_PARAMS
 * @param hidden     parameters hetmem fills before the kernel's own (0 for an ordinary kernel)
 * @param params     every parameter, hidden ones included (empty when not known)
 * @param slots      parameter indices of the slots, in source order
 */
record KernelSignature(boolean known, boolean translated, int hidden, List<KernelParameter> params, int[] slots) {
    /** The name HM_SPACE_PARAMS gives a translated kernel's first parameter. */
    private static final String PAGE_TABLE_PARAMETER = "hm_pt";
    /** The name HM_SPACE_PARAMS gives the first parameter of a kernel built with -DHM_PLAIN. */
    private static final String FAULT_WORD_PARAMETER = "hm_fault";

    static KernelSignature read(OpenClProgram program, String kernel, MemorySegment handle, int pools) {
        KernelParameter first = program.parameter(kernel, handle, 0);
        if (first == KernelParameter.UNKNOWN) {
            return new KernelSignature(false, true, 2 + pools, List.of(), new int[0]);
        }
        List<KernelParameter> params = new ArrayList<>();
        for (int i = 0; ; i++) {
            KernelParameter p = program.parameter(kernel, handle, i);
            if (p == KernelParameter.NONE || p == KernelParameter.UNKNOWN) {
                break;
            }
            params.add(p);
        }
        boolean translated = !params.isEmpty() && params.getFirst().name().equals(PAGE_TABLE_PARAMETER);
        boolean faultWord = !params.isEmpty() && params.getFirst().name().equals(FAULT_WORD_PARAMETER);
        int hidden = translated ? 2 + pools : faultWord ? 1 : 0;
        List<Integer> slots = new ArrayList<>();
        for (int i = hidden; i < params.size(); i++) {
            KernelParameter p = params.get(i);
            if (p.buffer() || (translated && p.type().equals("ulong4") && p.address() == KernelParameter.PRIVATE)) {
                slots.add(i);
            }
        }
        return new KernelSignature(true, translated, hidden, List.copyOf(params),
                slots.stream().mapToInt(Integer::intValue).toArray());
    }

    /**
     * Whether parameter {@code param} is an {@code HM_REGION} slot: one a region argument fills through
     * the page table, and nothing else may (a pointer slot left over takes a plain buffer instead).
     */
    boolean isRegionSlot(int param) {
        for (int s : slots) {
            if (s == param) {
                return !params.get(param).buffer();
            }
        }
        return false;
    }

    /** Whether region argument {@code index} fills a pointer (a plain argument). */
    boolean plain(int index) {
        return known && index >= 0 && index < slots.length && params.get(slots[index]).buffer();
    }

    /** The region argument parameter {@code param} takes when the launch has {@code arguments} of them; -1 for a scalar. */
    int argumentAt(int param, int arguments) {
        for (int i = 0; i < Math.min(arguments, slots.length); i++) {
            if (slots[i] == param) {
                return i;
            }
        }
        return -1;
    }

    /** Throws unless a launch with {@code arguments} region arguments fills slots that exist. */
    void check(String kernel, int arguments) {
        if (known && arguments > slots.length) {
            throw new IllegalArgumentException("kernel " + kernel + " has " + slots.length + " parameter(s) that take region "
                    + "arguments (HM_REGION, or __global pointers); the launch gave " + arguments + " region arguments");
        }
    }
}
