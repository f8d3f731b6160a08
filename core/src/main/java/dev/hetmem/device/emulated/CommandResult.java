package dev.hetmem.device.emulated;

/** What a dmirror-style command did: pages it touched and device faults it took. */
public record CommandResult(long pages, long faults) {}
