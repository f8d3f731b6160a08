package dev.hetmem.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** What a user is shown of a case JVM's standard error when it ends: readable lines, no stack trace, no class names. */
class CaseJvmTest {
    @Test
    void theLastLinesOfAChildsErrorsLeaveOutStackFramesAndClassNames(@TempDir Path dir) throws Exception {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        err.write(new byte[100 * 1024]);   // more than is read: only the end counts
        err.write(new byte[] {(byte) 0xC3, (byte) 0x28, '\n'});   // not UTF-8
        err.write(("""
                WARNING: something the JVM says
                Exception in thread "main" java.lang.IllegalStateException: the device node 1 is gone
                \tat dev.hetmem.cli.Main.run(Main.java:140)
                \tat dev.hetmem.cli.Main.main(Main.java:20)
                Caused by: java.io.IOException: read failed
                \t... 2 more
                java.lang.OutOfMemoryError
                """).getBytes(StandardCharsets.UTF_8));
        Path f = dir.resolve("case.err");
        Files.write(f, err.toByteArray());
        assertEquals(List.of("the device node 1 is gone", "read failed", "failed with no message"), CaseJvm.lastLines(f, 3));
        assertEquals(List.of(), CaseJvm.lastLines(dir.resolve("missing.err"), 3));
    }
}
