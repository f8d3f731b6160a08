package dev.hetmem;

/** One node of a memory: 0 is the host; devices follow in the order they were attached. */
public record NodeInfo(int id, String kind, String name, long capacityBytes) {}
