package io.paystream.bench;

import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;

import javax.imageio.ImageIO;

import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.style.Styler;

/** throughput.png (per run and mode) and latency.png (p50, p99, p99.9 per run, one panel per mode). */
final class Charts {

    private Charts() {
    }

    static void write(Bench b, Path dir) throws IOException {
        System.setProperty("java.awt.headless", "true");
        List<String> categories = categories(b);
        if (categories.isEmpty()) {
            return;
        }
        CategoryChart throughput = new CategoryChartBuilder().width(1400).height(650)
                .title("Paystream throughput (" + b.c.durationSeconds + " s per run, " + b.c.clients + " closed-loop clients)")
                .yAxisTitle("transfers per second (SQL-only: transactions per second)").build();
        style(throughput);
        for (String mode : b.c.modes) {
            List<Double> values = new ArrayList<>();
            for (String category : categories) {
                Double v = value(b, mode, category, -1);
                values.add(v == null ? 0.0 : v);
            }
            throughput.addSeries(mode, categories, values);
        }
        BitmapEncoder.saveBitmap(throughput, dir.resolve("throughput.png").toString(), BitmapEncoder.BitmapFormat.PNG);

        List<BufferedImage> panels = new ArrayList<>();
        for (String mode : b.c.modes) {
            CategoryChart latency = new CategoryChartBuilder().width(1400).height(560)
                    .title("Latency, " + mode + " (log scale; open loop from the intended send time)")
                    .yAxisTitle("milliseconds").build();
            style(latency);
            latency.getStyler().setYAxisLogarithmic(true);
            latency.getStyler().setLabelsVisible(false);
            // A log axis takes no zero: only the runs of this mode that have all three percentiles.
            List<String> present = categories.stream().filter(cat -> {
                Double v = value(b, mode, cat, 50);
                return v != null && v > 0;
            }).toList();
            if (present.isEmpty()) {
                continue;
            }
            double min = Double.MAX_VALUE;
            for (double pct : new double[] {50, 99, 99.9}) {
                List<Double> values = new ArrayList<>();
                for (String category : present) {
                    Double v = value(b, mode, category, pct);
                    double x = v == null || v <= 0 ? 0.01 : v;
                    min = Math.min(min, x);
                    values.add(x);
                }
                latency.addSeries("p" + (pct == 99.9 ? "99.9" : Integer.toString((int) pct)), present, values);
            }
            // XChart's bars start at the axis minimum; on a log axis it must be set below the data.
            latency.getStyler().setYAxisMin(Math.pow(10, Math.floor(Math.log10(min))));
            panels.add(BitmapEncoder.getBufferedImage(latency));
        }
        if (panels.isEmpty()) {
            return;
        }
        int height = panels.stream().mapToInt(BufferedImage::getHeight).sum();
        BufferedImage all = new BufferedImage(1400, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = all.createGraphics();
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, all.getWidth(), all.getHeight());
        int y = 0;
        for (BufferedImage panel : panels) {
            g.drawImage(panel, 0, y, null);
            y += panel.getHeight();
        }
        g.dispose();
        ImageIO.write(all, "png", dir.resolve("latency.png").toFile());
    }

    private static void style(CategoryChart chart) {
        Styler s = chart.getStyler();
        s.setLegendPosition(Styler.LegendPosition.InsideNE);
        s.setChartBackgroundColor(Color.WHITE);
        s.setPlotBackgroundColor(Color.WHITE);
        chart.getStyler().setXAxisLabelRotation(20);
        chart.getStyler().setAvailableSpaceFill(0.8);
        chart.getStyler().setOverlapped(false);
        chart.getStyler().setLabelsVisible(true);
        chart.getStyler().setLabelsFontColorAutomaticEnabled(false);
        chart.getStyler().setLabelsFontColor(Color.DARK_GRAY);
        chart.getStyler().setDecimalPattern("#,##0");
    }

    private static List<String> categories(Bench b) {
        LinkedHashSet<String> c = new LinkedHashSet<>();
        if (!b.sqlResults.isEmpty()) {
            c.add("SQL-only (pgbench)");
        }
        for (Phase p : b.phases) {
            c.add(category(p));
        }
        return new ArrayList<>(c);
    }

    private static String category(Phase p) {
        return p.workload + " " + p.loop + (p.loop.equals("open") ? " " + p.ratePercent + "%" : "");
    }

    /** Throughput (percentile < 0) or a latency percentile in ms; null when the run is missing. */
    private static Double value(Bench b, String mode, String category, double percentile) {
        if (category.equals("SQL-only (pgbench)")) {
            Optional<Pgbench.Result> r = Report.sql(b, mode);
            return r.map(x -> percentile < 0 ? x.tps() : x.millis(percentile)).filter(v -> !v.isNaN()).orElse(null);
        }
        return b.phases.stream().filter(p -> p.mode.equals(mode) && category(p).equals(category)).findFirst()
                .map(p -> percentile < 0 ? p.throughput() : p.millis(percentile)).filter(v -> !v.isNaN()).orElse(null);
    }
}
