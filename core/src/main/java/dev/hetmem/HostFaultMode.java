package dev.hetmem;

/** How host code reaches a region's pages. Chosen once, when the memory is built. */
public enum HostFaultMode {
    /**
     * Host code opens views ({@link Region#host}) that bring their pages home and pin them.
     * Portable; the default.
     */
    HOST_VIEWS,
    /**
     * The whole region is one mapping ({@link Region#segment()}, {@link Region#address()}); any load
     * or store from Java or native code to a page that is on a device blocks in the kernel until the
     * native fault service has brought its granule home. Linux only, and needs the right to use
     * userfaultfd (root, access to /dev/userfaultfd, or vm.unprivileged_userfaultfd=1).
     */
    USERFAULTFD
}
