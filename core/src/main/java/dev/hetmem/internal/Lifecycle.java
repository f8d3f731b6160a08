package dev.hetmem.internal;

/**
 * Whether a region (or a whole memory) may still be used, and who is using it. Operations enter
 * and exit; {@link #close} refuses while host views are open (their segments point at the memory
 * it would unmap), then waits for running operations such as kernels to finish. So a region freed
 * under a running kernel is freed after the kernel, and every later use fails with a clear error.
 */
public final class Lifecycle {
    private final String what;
    private boolean closed;
    private int running;
    private int views;

    public Lifecycle(String what) {
        this.what = what;
    }

    public synchronized void enter() {
        if (closed) {
            throw new IllegalStateException(what + " is freed");
        }
        running++;
    }

    public synchronized void exit() {
        if (--running == 0) {
            notifyAll();
        }
    }

    public synchronized void openView() {
        if (closed) {
            throw new IllegalStateException(what + " is freed");
        }
        views++;
    }

    public synchronized void closeView() {
        views--;
    }

    public synchronized boolean isClosed() {
        return closed;
    }

    public synchronized void checkOpen() {
        if (closed) {
            throw new IllegalStateException(what + " is freed");
        }
    }

    /**
     * Marks closed and waits for running operations; returns false if it was closed already.
     * Throws, changing nothing, if host views are open.
     */
    public synchronized boolean close() {
        if (closed) {
            return false;
        }
        if (views > 0) {
            throw new IllegalStateException(what + " has " + views + " open host view(s); close them before freeing it");
        }
        closed = true;
        boolean interrupted = false;
        while (running > 0) {
            try {
                wait();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        return true;
    }
}
