package dev.hetmem.io;

/** How a file is read (direct-I/O loading's schemes; all but OVERLAPPED exist to measure against). */
public enum LoadScheme {
    /** read() through the page cache, one stream: the seed's "normal". */
    BUFFERED,
    /** One synchronous O_DIRECT stream. */
    DIRECT,
    /** hetmem's loader: several O_DIRECT streams, page population (host) or device copies (ring) overlapped with them. */
    OVERLAPPED,
    /** Map the file and copy it. */
    MMAP
}
