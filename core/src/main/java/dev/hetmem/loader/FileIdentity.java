package dev.hetmem.loader;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.util.Objects;

/**
 * Which file a load read, and in what state: its identity (device and inode), size and time of last
 * modification when the load began. The schemes open the file by its path, each as it needs, so a
 * load checks at its end that the path still names the same file, unchanged: a file deleted,
 * renamed, replaced by another (of any size) or written during the load would otherwise leave a
 * region that holds a mix of old and new bytes, or another file's, and says it loaded the file.
 *
 * <p>What it cannot see: the kernel stamps modifications with a coarse clock (a tick of 1-10 ms),
 * so a write within the tick of the first reading passes; writes through another process's shared
 * mapping of the file update the times late or (tmpfs) not at all. What it refuses that changed no
 * byte: a {@code touch} of the file during the load (its message says the bytes "may" mix). The
 * change time is compared as well as the modification time: a write that puts the old
 * modification time back ({@code touch -r}, a copy that keeps times) still changes it.
 *
 * @param key      the file system's identity of the file (device and inode on Linux), null where it has none
 * @param changed  the time of the inode's last change, null where the file system does not give it
 */
public record FileIdentity(Object key, long size, FileTime modified, FileTime changed) {

    /** The file {@code path} names now, as it is now. */
    public static FileIdentity of(Path path) throws IOException {
        BasicFileAttributes a = Files.readAttributes(path, BasicFileAttributes.class);
        FileTime changed;
        try {
            changed = (FileTime) Files.getAttribute(path, "unix:ctime");
        } catch (UnsupportedOperationException | IllegalArgumentException e) {
            changed = null;   // no "unix" view here: the modification time alone
        }
        return new FileIdentity(a.fileKey(), a.size(), a.lastModifiedTime(), changed);
    }

    /** Throws, saying what changed, unless {@code path} names this file as it was; as the loader says it. */
    void checkUnchanged(Path path) throws IOException {
        checkUnchanged(path, "during the load", "when the load began", "when it ended");
    }

    /**
     * Throws, saying what changed, unless {@code path} names this file as it was. {@code during}
     * names the time it was read in (e.g. "during the load"), {@code then} and {@code now} the
     * moments this identity and the check were taken, for the message.
     */
    public void checkUnchanged(Path path, String during, String then, String now) throws IOException {
        FileIdentity current;
        try {
            current = of(path);
        } catch (NoSuchFileException e) {
            throw new IOException(path + " was deleted or renamed " + during + ": what was read cannot be checked "
                    + "against the file; load it again", e);
        }
        if (!Objects.equals(key, current.key)) {
            throw new IOException(path + " was replaced by another file " + during + " (a new file under its "
                    + "name): load it again");
        }
        if (current.size != size) {
            throw new IOException(path + " changed size " + during + ": " + size + " bytes " + then + ", " + current.size
                    + " " + now);
        }
        if (!modified.equals(current.modified) || !Objects.equals(changed, current.changed)) {
            throw new IOException(path + " was written " + during + " (last modified at " + modified
                    + " " + then + ", at " + current.modified + " " + now + "): what was read may mix old and "
                    + "new bytes; load it again once nothing writes it");
        }
    }
}
