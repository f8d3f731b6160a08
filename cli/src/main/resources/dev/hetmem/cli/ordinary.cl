/*
 * Four kernels written the way published OpenCL code is: plain __global pointers, indices from
 * get_global_id / get_group_id, nothing that knows about pages or hetmem. The same source runs on
 * plain buffers and, unchanged, on hetmem regions passed as plain arguments.
 */

/* y = a * x + y */
__kernel void saxpy(const float a, __global const float *x, __global float *y) {
    const size_t i = get_global_id(0);
    y[i] = a * x[i] + y[i];
}

/*
 * C = A * B, row-major: A is M x K, B is K x N, C is M x N. Each work-group computes a TS x TS
 * tile of C, staging tiles of A and B in local memory (K and N multiples of TS).
 */
#define TS 16
__kernel void sgemm(const int M, const int N, const int K,
                    __global const float *A, __global const float *B, __global float *C) {
    const int col = get_local_id(0);
    const int row = get_local_id(1);
    const int globalCol = TS * get_group_id(0) + col;
    const int globalRow = TS * get_group_id(1) + row;
    __local float Asub[TS][TS];
    __local float Bsub[TS][TS];
    float acc = 0.0f;
    for (int t = 0; t < K / TS; t++) {
        Asub[row][col] = A[globalRow * K + t * TS + col];
        Bsub[row][col] = B[(t * TS + row) * N + globalCol];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int k = 0; k < TS; k++) {
            acc += Asub[row][k] * Bsub[k][col];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    C[globalRow * N + globalCol] = acc;
}

/*
 * Five-point stencil: out (H x W) from in ((H + 2) x (W + 2), one row and column of halo on every
 * side). Work item (x, y) reads rows y .. y + 2 of in.
 */
__kernel void stencil(const int W, __global const float *in, __global float *out) {
    const int x = get_global_id(0);
    const int y = get_global_id(1);
    const int P = W + 2;
    out[y * W + x] = 0.2f * (in[(y + 1) * P + x + 1] + in[y * P + x + 1] + in[(y + 2) * P + x + 1]
                             + in[(y + 1) * P + x] + in[(y + 1) * P + x + 2]);
}

/* One partial sum per work-group of RG items, by a tree in local memory. */
#define RG 256
__kernel void reduce(__global const float *in, __global float *partial) {
    __local float s[RG];
    const int l = get_local_id(0);
    s[l] = in[get_global_id(0)];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int step = RG / 2; step > 0; step >>= 1) {
        if (l < step) {
            s[l] += s[l + step];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0) {
        partial[get_group_id(0)] = s[0];
    }
}
