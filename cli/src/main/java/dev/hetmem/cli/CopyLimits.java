package dev.hetmem.cli;

import dev.hetmem.driver.HostCopy;
import dev.hetmem.limits.NativeBuffer;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The plain-copy limits a bench prints beside its rows: {@code memcpy}, and the streaming copy
 * hetmem's migration batches use ({@link HostCopy}), each the best of three copies between fresh
 * buffers. On machines where {@code memcpy}'s stores read each destination line in first, the
 * streaming copy is the faster and the machine's real limit ({@code bench migrate} compares its
 * rows with the faster of the two).
 *
 * @param memcpy GB/s with {@code memcpy}
 * @param streamed GB/s with the streaming copy, or 0 where it is not available
 */
record CopyLimits(double memcpy, double streamed) {
    static CopyLimits measure(long bytes, boolean hugePages) {
        double memcpy = NativeBuffer.bestPlainCopyGbps(bytes, hugePages, 3);
        double streamed = HostCopy.streamingAvailable() ? NativeBuffer.bestStreamingCopyGbps(bytes, hugePages, 3) : 0;
        return new CopyLimits(memcpy, streamed);
    }

    /** The JSON limits: {@code memcpy_gbps}, and {@code streaming_copy_gbps} or why there is none. */
    Map<String, Object> json() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("memcpy_gbps", round(memcpy));
        if (HostCopy.streamingAvailable()) {
            m.put("streaming_copy_gbps", round(streamed));
        } else {
            m.put("streaming_unavailable", HostCopy.streamingUnavailableReason());
        }
        return m;
    }

    /** For the text table's first line: "plain copy (the limit): X GB/s with memcpy, Y GB/s streamed". */
    String text() {
        return String.format("plain copy (the limit): %.2f GB/s with memcpy, %s", memcpy, HostCopy.streamingAvailable()
                ? String.format("%.2f GB/s streamed", streamed) : "no streaming copy (" + HostCopy.streamingUnavailableReason() + ")");
    }

    private static double round(double v) {
        return Math.round(v * 1000) / 1000.0;
    }
}
