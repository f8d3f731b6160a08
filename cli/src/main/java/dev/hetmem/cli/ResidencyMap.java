package dev.hetmem.cli;

import dev.hetmem.PageSnapshot;

import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Where a region's pages are, as a picture: one cell per page (4 KiB), in rows, coloured by the
 * node that holds it, light where it is read-only, with the legend beside; as a PNG, and as a
 * strip of coloured blocks on a terminal (letters where the output is not one).
 */
final class ResidencyMap {
    static final int CELL = 8;
    static final int COLUMNS = 128;

    /** What one page is, for the picture. */
    enum Kind {
        UNTOUCHED("untouched (reads as zeros)", new Color(0xF4F4F4), '.', 250),
        FREED("freed", new Color(0x202020), 'x', 236),
        HOST_RW("host, read-write", new Color(0x7F8C8D), 'H', 244),
        HOST_RO("host, read-only", new Color(0xC8D0D2), 'h', 252),
        DEV1_RW("device 1, read-write", new Color(0x2471A3), '1', 25),
        DEV1_RO("device 1, read-only", new Color(0x85C1E9), 'i', 117),
        DEV2_RW("device 2, read-write", new Color(0xCA6F1E), '2', 166),
        DEV2_RO("device 2, read-only", new Color(0xF5CBA7), 'j', 223),
        DUPLICATED("duplicated (read-only on several nodes)", new Color(0x8E44AD), 'd', 97);

        final String label;
        final Color color;
        final char letter;
        final int ansi256;

        Kind(String label, Color color, char letter, int ansi256) {
            this.label = label;
            this.color = color;
            this.letter = letter;
            this.ansi256 = ansi256;
        }
    }

    private final String title;
    private final Kind[] pages;

    ResidencyMap(String title, PageSnapshot s) {
        this.title = title;
        this.pages = new Kind[s.pages()];
        for (int p = 0; p < s.pages(); p++) {
            pages[p] = kindOf(s, p);
        }
    }

    static Kind kindOf(PageSnapshot s, int p) {
        if (s.freed(p)) {
            return Kind.FREED;
        }
        int mask = s.residentMask(p);
        if (mask == 0) {
            return Kind.UNTOUCHED;
        }
        if (Integer.bitCount(mask) > 1) {
            return Kind.DUPLICATED;
        }
        boolean rw = s.writer(p) >= 0;
        return switch (Integer.numberOfTrailingZeros(mask)) {
            case 0 -> rw ? Kind.HOST_RW : Kind.HOST_RO;
            case 1 -> rw ? Kind.DEV1_RW : Kind.DEV1_RO;
            default -> rw ? Kind.DEV2_RW : Kind.DEV2_RO;
        };
    }

    /** How many pages of each kind, in the order of {@link Kind}; kinds with none are left out. */
    Map<Kind, Integer> counts() {
        Map<Kind, Integer> c = new LinkedHashMap<>();
        for (Kind k : Kind.values()) {
            int n = 0;
            for (Kind p : pages) {
                n += p == k ? 1 : 0;
            }
            if (n > 0) {
                c.put(k, n);
            }
        }
        return c;
    }

    /** The picture, one cell per page, {@link #COLUMNS} pages a row, legend to the right. */
    BufferedImage image() {
        int rows = Math.max(1, Math.ceilDiv(pages.length, COLUMNS));
        int legendWidth = 440;
        int top = 40;
        int width = 20 + COLUMNS * CELL + 20 + legendWidth;
        int height = Math.max(top + rows * CELL + 20, top + Kind.values().length * 22 + 20);
        BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, width, height);
            g.setColor(Color.BLACK);
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 16));
            g.drawString(title, 20, 26);
            for (int p = 0; p < pages.length; p++) {
                g.setColor(pages[p].color);
                g.fillRect(20 + (p % COLUMNS) * CELL, top + (p / COLUMNS) * CELL, CELL - 1, CELL - 1);
            }
            g.setColor(Color.GRAY);
            g.setStroke(new BasicStroke(1f));
            g.drawRect(19, top - 1, COLUMNS * CELL + 1, rows * CELL + 1);
            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 13));
            int y = top;
            int x = 20 + COLUMNS * CELL + 20;
            Map<Kind, Integer> counts = counts();
            for (Kind k : Kind.values()) {
                g.setColor(k.color);
                g.fillRect(x, y, 14, 14);
                g.setColor(Color.DARK_GRAY);
                g.drawRect(x, y, 14, 14);
                g.setColor(Color.BLACK);
                g.drawString(k.label + ": " + counts.getOrDefault(k, 0) + " pages", x + 22, y + 12);
                y += 22;
            }
            g.drawString("one cell = 4 KiB, " + COLUMNS + " a row", x, y + 14);
        } finally {
            g.dispose();
        }
        return img;
    }

    void writePng(Path file) throws IOException {
        System.setProperty("java.awt.headless", "true");
        BufferedImage img;
        try {
            img = image();
        } catch (java.awt.AWTError | UnsatisfiedLinkError | InternalError | NullPointerException e) {
            throw Chart.fontsMissing(file, e);
        }
        // written to a stream opened here, in memory: ImageIO.write(img, "png", File), given a path it
        // cannot open (a missing folder), prints the JDK's own stack trace to System.err and then
        // fails with words that do not say why ("Can't create an ImageOutputStream!")
        ImageIO.setUseCache(false);
        try {
            Chart.replaceWhole(file, part -> {
                try (java.io.OutputStream o = new java.io.BufferedOutputStream(new java.io.FileOutputStream(part.toFile()))) {
                    if (!ImageIO.write(img, "png", o)) {
                        throw new IOException("no PNG writer in this JDK");
                    }
                }
            });
        } catch (IOException e) {
            throw new IOException("cannot write the picture to " + file + ": " + e.getMessage(), e);
        }
    }

    /**
     * The region in {@code width} characters, each standing for as many pages as it takes (the kind
     * most of them are); coloured blocks with {@code ansi}, else letters; then the legend.
     */
    List<String> text(int width, boolean ansi) {
        int per = Math.max(1, Math.ceilDiv(pages.length, width));
        StringBuilder strip = new StringBuilder();
        for (int i = 0; i < pages.length; i += per) {
            int[] votes = new int[Kind.values().length];
            for (int p = i; p < Math.min(pages.length, i + per); p++) {
                votes[pages[p].ordinal()]++;
            }
            int best = 0;
            for (int k = 1; k < votes.length; k++) {
                best = votes[k] > votes[best] ? k : best;
            }
            Kind k = Kind.values()[best];
            strip.append(ansi ? "\u001b[38;5;" + k.ansi256 + "m\u2588" : String.valueOf(k.letter));
        }
        if (ansi) {
            strip.append("\u001b[0m");
        }
        List<String> lines = new ArrayList<>();
        lines.add(title + " (" + pages.length + " pages, " + per + " a character)");
        lines.add(strip.toString());
        for (Map.Entry<Kind, Integer> e : counts().entrySet()) {
            Kind k = e.getKey();
            lines.add("  " + (ansi ? "\u001b[38;5;" + k.ansi256 + "m\u2588\u001b[0m" : String.valueOf(k.letter)) + " "
                    + k.label + ": " + e.getValue() + " pages");
        }
        return lines;
    }
}
