package dev.hetmem.cli;

import org.junit.jupiter.api.Test;

import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The one line a failure shows the user. */
class FailureMessageTest {
    /** A file-system refusal says what happened, not the path alone (the JDK's message for most of them). */
    @Test
    void aFileSystemRefusalSaysWhatHappened() {
        assertEquals("/proc/x: permission denied", Main.failureMessage(new AccessDeniedException("/proc/x")));
        assertEquals("/nope: no such file or folder", Main.failureMessage(new NoSuchFileException("/nope")));
        assertEquals("/d: Read-only file system", Main.failureMessage(new FileSystemException("/d", null, "Read-only file system")));
        assertEquals("/d: permission denied",
                Main.failureMessage(new java.io.UncheckedIOException(new AccessDeniedException("/d"))));
    }
}
