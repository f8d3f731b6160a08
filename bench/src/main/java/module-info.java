/** hetmem's JMH microbenchmarks (run with {@code ./hetmem jmh}). */
module dev.hetmem.bench {
    requires dev.hetmem;
    requires jmh.core;

    // JMH's runner reaches the benchmark and its generated harness reflectively
    opens dev.hetmem.bench to jmh.core;
    opens dev.hetmem.bench.jmh_generated to jmh.core;
}
