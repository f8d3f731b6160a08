package dev.hetmem.device.opencl;

import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Which typedefs of a program's source hetmem takes as certain, and which it leaves unresolved. */
class SourceTypedefsTest {
    @Test
    void plainFileScopeTypedefsResolveThroughChainsAndUnsigned() {
        assertEquals(Map.of("real", "float", "count_t", "uint", "n_t", "uint", "vec", "float4", "big", "ulong", "cf", "float"),
                SourceTypedefs.of("""
                        typedef float real;
                        typedef unsigned int count_t;
                        typedef count_t n_t;
                        typedef float4 vec;
                        typedef unsigned long big;
                        typedef const float cf;
                        typedef struct { float lo, hi; } range_t;
                        typedef unsigned u;
                        typedef float *fp;
                        """));
    }

    /**
     * A name the text does not define for certain stays unresolved: in a conditional (the other branch
     * may be the one compiled), in a comment, inside braces, or defined twice. A wrong guess would pass a
     * value of the wrong size (found by a review: the last definition won).
     */
    @Test
    void typedefsInConditionalsCommentsBlocksOrDefinedTwiceAreNotResolved() {
        assertEquals(Map.of("kept", "int"), SourceTypedefs.of("""
                #ifdef cl_khr_fp64
                typedef double real;
                #else
                typedef float real;
                #endif
                typedef int kept;
                // typedef float commented;
                /* typedef float blocked;
                   typedef double blocked2; */
                typedef double twice; typedef float twice;
                float f(float x) { typedef double inner; return x; }
                typedef float inner;
                """));
        assertEquals(Map.of(), SourceTypedefs.of("  #  if 1\ntypedef float a;\n#endif\n"));
    }
}
