package dev.hetmem.driver;

import dev.hetmem.HetmemException;

/**
 * A kernel touched an address its launch did not declare, or wrote through an argument declared
 * read-only: a GPU's illegal-address error. Every driver reports it with this type, naming the
 * argument and the offset. What the kernel wrote before is kept; the illegal access itself is not
 * performed.
 */
public final class DeviceFaultException extends HetmemException {
    /**
     * An illegal access described by {@code message}.
     *
     * @param message the access: the argument, the offset and, where known, the address
     */
    public DeviceFaultException(String message) {
        super(message);
    }
}
