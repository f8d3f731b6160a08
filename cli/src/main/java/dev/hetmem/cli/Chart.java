package dev.hetmem.cli;

import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.CategoryAxis;
import org.jfree.chart.axis.CategoryLabelPositions;
import org.jfree.chart.plot.CategoryPlot;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.ValueMarker;
import org.jfree.chart.ui.RectangleAnchor;
import org.jfree.chart.ui.TextAnchor;
import org.jfree.data.category.DefaultCategoryDataset;
import org.jfree.svg.SVGGraphics2D;
import org.jfree.svg.SVGUtils;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Rectangle;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * A benchmark's table drawn as grouped bars (one group per case, one bar per mode), with the
 * machine's limits measured in the same run drawn as dashed lines across; written as PNG or SVG,
 * by the file's extension.
 */
final class Chart {
    static final int WIDTH = 1200;
    static final int HEIGHT = 700;

    private final String title;
    private final String valueLabel;
    private final DefaultCategoryDataset data = new DefaultCategoryDataset();
    private final Map<String, Double> limits = new LinkedHashMap<>();
    private double max;

    Chart(String title, String valueLabel) {
        this.title = title;
        this.valueLabel = valueLabel;
    }

    /** The bar of {@code series} in the group {@code category}. */
    Chart bar(String category, String series, double value) {
        data.addValue(value, series, category);
        max = Math.max(max, value);
        return this;
    }

    /** A dashed line across the chart at {@code value}, labelled {@code name} (a limit of the machine). */
    Chart limit(String name, double value) {
        limits.put(name, value);
        max = Math.max(max, value);
        return this;
    }

    boolean isEmpty() {
        return data.getColumnCount() == 0;
    }

    /** The {@code --plot} file a bench was given (checked before it runs), or null. */
    static String plotOption(Args args) {
        String plot = args.value("plot", null);
        if (plot != null) {
            checkFile(plot);
            checkFolder("--plot", plot);
        }
        return plot;
    }

    /**
     * Throws a usage error unless the folder {@code file} goes in exists and can be written:
     * checked before the work, so that a long benchmark does not end by failing to save its picture.
     */
    static void checkFolder(String option, String file) {
        java.nio.file.Path path;
        try {
            path = java.nio.file.Path.of(file).toAbsolutePath();
        } catch (java.nio.file.InvalidPathException e) {
            throw new Args.UsageException(option + " " + Main.printable(file) + ": not a file name (" + e.getReason() + ")");
        }
        java.nio.file.Path parent = path.getParent();
        if (parent == null || !java.nio.file.Files.isDirectory(parent)) {
            throw new Args.UsageException(option + " " + file + ": there is no folder " + parent);
        }
        if (java.nio.file.Files.isDirectory(path)) {
            throw new Args.UsageException(option + " " + file + ": that is a folder, not a file");
        }
        String why = whyNotWritable(parent);
        if (why != null) {
            throw new Args.UsageException(option + " " + file + ": the folder " + parent + " cannot be written (" + why + ")");
        }
    }

    /**
     * Why a file cannot be made in {@code folder}, or null if one can: a file made and removed, since
     * the folder's mode alone says yes to root everywhere, /proc included.
     */
    static String whyNotWritable(Path folder) {
        try {
            java.nio.file.Files.delete(java.nio.file.Files.createTempFile(folder, ".hetmem-", ".probe"));
            return null;
        } catch (IOException | UnsupportedOperationException e) {
            // a file system exception's message is the probe's own path: its reason says why
            return e instanceof java.nio.file.AccessDeniedException ? "permission denied"
                    : e instanceof java.nio.file.FileSystemException f && f.getReason() != null ? f.getReason() : "refused";
        }
    }

    /** Throws a usage error unless {@code file} ends in .png or .svg; checked before a benchmark runs. */
    static void checkFile(String file) {
        String f = file.toLowerCase(Locale.ROOT);
        if (!f.endsWith(".png") && !f.endsWith(".svg")) {
            throw new Args.UsageException("--plot " + file + ": the file must end in .png or .svg");
        }
    }

    /**
     * What a drawing failure says when the JDK's text rendering cannot start (no fontconfig, or no
     * font: the JDK throws an error or a NullPointerException from its font configuration).
     */
    static IllegalStateException fontsMissing(Path file, Throwable e) {
        return new IllegalStateException("cannot draw " + file + ": the JDK could not render text (" + e.getMessage()
                + "); it needs fontconfig and a font, e.g. 'apt-get install fontconfig fonts-dejavu-core'", e);
    }

    /** Draws the chart into {@code file} (.png or .svg). */
    void write(Path file) throws IOException {
        try {
            draw(file);
        } catch (java.awt.AWTError | UnsatisfiedLinkError | InternalError | NullPointerException e) {
            throw fontsMissing(file, e);
        }
    }

    private void draw(Path file) throws IOException {
        System.setProperty("java.awt.headless", "true");
        JFreeChart chart = ChartFactory.createBarChart(title, null, valueLabel, data, PlotOrientation.VERTICAL,
                true, false, false);
        chart.setBackgroundPaint(Color.WHITE);
        CategoryPlot plot = chart.getCategoryPlot();
        plot.setBackgroundPaint(Color.WHITE);
        plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
        CategoryAxis cases = plot.getDomainAxis();
        cases.setCategoryLabelPositions(data.getColumnCount() > 6 ? CategoryLabelPositions.UP_45 : CategoryLabelPositions.STANDARD);
        cases.setMaximumCategoryLabelLines(3);
        plot.getRangeAxis().setUpperBound(max <= 0 ? 1 : max * 1.12);
        float[] dash = {8f, 6f};
        Color[] colors = {new Color(0xC0392B), new Color(0x8E44AD), new Color(0x16A085)};
        int i = 0;
        for (Map.Entry<String, Double> e : limits.entrySet()) {
            ValueMarker m = new ValueMarker(e.getValue());
            m.setPaint(colors[i++ % colors.length]);
            m.setStroke(new BasicStroke(2f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, dash, 0f));
            m.setLabel(String.format(Locale.ROOT, "%s %.3g", e.getKey(), e.getValue()));
            m.setLabelAnchor(RectangleAnchor.TOP_RIGHT);
            m.setLabelTextAnchor(TextAnchor.BOTTOM_RIGHT);
            plot.addRangeMarker(m);
        }
        boolean svg = file.toString().toLowerCase(Locale.ROOT).endsWith(".svg");
        replaceWhole(file, part -> {
            if (svg) {
                SVGGraphics2D g = new SVGGraphics2D(WIDTH, HEIGHT);
                chart.draw(g, new Rectangle(0, 0, WIDTH, HEIGHT));
                SVGUtils.writeToSVG(part.toFile(), g.getSVGElement());
            } else {
                ChartUtils.saveChartAsPNG(part.toFile(), chart, WIDTH, HEIGHT);
            }
        });
    }

    /** Writes a file's new contents. */
    @FunctionalInterface
    interface FileWriter {
        void write(Path part) throws IOException;
    }

    /**
     * Writes {@code file} under a temporary name beside it and moves it into place whole: a failure
     * part-way (a full disk, a font missing) leaves the file that was there before, not a truncated
     * one, and no temporary file (pictures, and {@code bench load}'s test files).
     */
    static void replaceWhole(Path file, FileWriter writer) throws IOException {
        Path dir = file.toAbsolutePath().getParent();
        Path part;
        try {
            part = java.nio.file.Files.createTempFile(dir, ".hetmem-", ".part");
        } catch (java.nio.file.FileSystemException e) {
            // its message is the temporary file's path alone: the folder, and why
            String why = e.getReason() != null ? e.getReason() : e instanceof java.nio.file.NoSuchFileException
                    ? "No such file or directory" : e instanceof java.nio.file.AccessDeniedException ? "Permission denied" : "refused";
            throw new IOException(dir + ": " + why, e);
        }
        part.toFile().deleteOnExit();   // on Ctrl-C, where the finally below does not run
        boolean moved = false;
        try {
            writer.write(part);
            java.nio.file.Files.move(part, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                    java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            moved = true;
        } finally {
            if (!moved) {
                java.nio.file.Files.deleteIfExists(part);
            }
        }
    }
}
