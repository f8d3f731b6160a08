package dev.hetmem.loader;

import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * The file system's refusals of a file to load, with the reason said. The JDK's
 * {@link NoSuchFileException} and {@link AccessDeniedException} of an open carry the path alone, so a
 * user saw "hetmem load: /models/m.safetensors" and had to guess what was wrong with it; and
 * {@code Files.exists} answers false where a folder on the path cannot be entered, which read as
 * "no such file" for a file that is there.
 */
public final class FileErrors {
    private FileErrors() {
    }

    /** {@code e}, of the same kind, its reason said where the file system gave none; {@code e} as its cause. */
    public static FileSystemException explained(FileSystemException e, Path path) {
        if (e.getReason() != null) {
            return e;
        }
        FileSystemException out = switch (e) {
            case NoSuchFileException ignored -> new NoSuchFileException(path.toString(), null, "no such file to load");
            case AccessDeniedException ignored -> new AccessDeniedException(path.toString(), null,
                    "permission denied (the file is not readable by this process, or a folder on its path cannot be entered)");
            default -> new FileSystemException(path.toString(), null, "cannot be opened");
        };
        out.initCause(e);
        return out;
    }
}
