package dev.hetmem.device.emulated;

/**
 * What a dmirror-style command ({@link EmulatedDevice#read}, {@link EmulatedDevice#write}) did:
 * pages it touched and device faults it took, as in the {@code LaunchResult} of its launch.
 *
 * @param pages the 4 KiB pages of the region the command covered
 * @param faults granules that had to be made resident on the device for it; 0 when every page
 *               was already there with the access it needed
 */
public record CommandResult(long pages, long faults) {}
