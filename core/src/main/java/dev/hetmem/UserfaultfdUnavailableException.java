package dev.hetmem;

/**
 * The userfaultfd host-fault mode cannot run here. The message says which of the conditions
 * failed (not Linux, no permission, an old kernel, the native fault service not built or not
 * loadable) and how to enable it. Host views work everywhere.
 */
public final class UserfaultfdUnavailableException extends HetmemException {
    /**
     * An exception saying why the mode cannot run.
     *
     * @param message the condition that failed and how to enable the mode
     */
    public UserfaultfdUnavailableException(String message) {
        super(message);
    }
}
