/*
 * HMM's example, mul_mat_on_gpu(r, a, b, m), in OpenCL C, on regions: r = a * b for m x m floats.
 * One work item computes JB consecutive elements of one row of r. It translates its row of a once
 * per page, and each run of b it reads (JB floats) once, so the page table costs about one lookup
 * per JB multiply-adds. Built with -DHM_PLAIN the same code runs on plain buffers.
 */
#define JB 64

__kernel void mulMat(HM_SPACE_PARAMS, HM_REGION(r), HM_REGION(a), HM_REGION(b), const uint m) {
    const uint blocks = (m + JB - 1) / JB;
    const uint i = get_global_id(0) / blocks;
    const uint j0 = (get_global_id(0) % blocks) * JB;
    const uint n = min((uint) JB, m - j0);
    float acc[JB];
    for (uint jj = 0; jj < JB; jj++) {
        acc[jj] = 0.0f;
    }
    for (uint k0 = 0; k0 < m;) {
        const ulong arow = (ulong) i * m + k0;
        const uint kn = (uint) min((ulong) (m - k0), HM_PAGE_LEFT(a, arow * 4) / 4);
        __global const float *ap = HM_PTR(float, a, arow);
        for (uint k = k0; k < k0 + kn; k++) {
            const float aik = ap[k - k0];
            const ulong at = (ulong) k * m + j0;
            if (n == JB && HM_SAME_PAGE(b, at * 4, JB * 4)) {
                __global const float *bk = HM_PTR(float, b, at);
                for (uint jj = 0; jj < JB; jj++) {
                    acc[jj] += aik * bk[jj];
                }
            } else {
                for (uint jj = 0; jj < n; jj++) {
                    acc[jj] += aik * *HM_PTR(float, b, at + jj);
                }
            }
        }
        k0 += kn;
    }
    const ulong out = (ulong) i * m + j0;
    if (n == JB && HM_SAME_PAGE(r, out * 4, JB * 4)) {
        __global float *rp = HM_WPTR(float, r, out);
        for (uint jj = 0; jj < JB; jj++) {
            rp[jj] = acc[jj];
        }
    } else {
        for (uint jj = 0; jj < n; jj++) {
            *HM_WPTR(float, r, out + jj) = acc[jj];
        }
    }
}
