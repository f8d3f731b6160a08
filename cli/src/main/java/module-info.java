/** hetmem's command line: demo, info, load, benchmarks and the stress program. */
module dev.hetmem.cli {
    requires dev.hetmem;
    requires dev.hetmem.opencl;
    requires jdk.management;   // the machine's memory size, for benchmark limits
    requires java.desktop;     // charts are drawn with Java 2D
    requires org.jfree.jfreechart;
    requires org.jfree.svg;
    requires info.picocli;
}
