package dev.hetmem.cli;

/** HMM's example matrix product, mul_mat_on_gpu(r, a, b, m), as an OpenCL C kernel on regions ({@code mulmat.cl}). */
final class MulMatCl {
    /** Elements of a row of r one work item computes (JB in mulmat.cl). */
    static final int BLOCK = 64;
    static final String SOURCE = load();

    private MulMatCl() {}

    static long globalSize(int m) {
        return (long) m * Math.ceilDiv(m, BLOCK);
    }

    private static String load() {
        return KernelSources.text("mulmat.cl");
    }
}
