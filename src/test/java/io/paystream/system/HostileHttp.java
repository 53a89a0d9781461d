package io.paystream.system;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * A deliberately dumb HTTP/1.1 client over a plain socket, for {@link HostileInputPropertyTests}.
 *
 * <p>Why not WebClient or java.net.http: both validate what they send (header names and values,
 * methods, request targets, Content-Length), and a fuzz suite must be able to send exactly the bytes it
 * generated: raw non-ASCII or control bytes in headers, unencoded characters in the request target,
 * duplicated headers, a chunked body of any size. Every request is sent on a fresh connection with
 * {@code Connection: close}, so one bad request can never poison the next one.
 *
 * <p>Header values are "byte strings": each char is one byte (0-255) on the wire. Use {@link #utf8} to
 * put UTF-8 text in a header.
 */
final class HostileHttp {

    /** A response must arrive within this; a hung request fails the property instead of the build. */
    static final int TIMEOUT_MILLIS = 20_000;

    /** How long a live event stream may take to send its first complete event before the client stops reading. */
    static final int FIRST_EVENT_MILLIS = 1_500;

    /** Bodies bigger than this are written on another thread: the server may answer (413) before reading them. */
    private static final int INLINE_BODY_BYTES = 32 * 1024;

    private static final ExecutorService WRITERS = Executors.newCachedThreadPool(runnable -> {
        Thread thread = new Thread(runnable, "hostile-http-writer");
        thread.setDaemon(true);
        return thread;
    });

    private final int port;

    HostileHttp(int port) {
        this.port = port;
    }

    /** One request, exactly as it goes on the wire (plus Host, Connection: close and the body's framing). */
    record Request(String method, String target, List<String[]> headers, byte[] body, boolean chunked) {

        Request {
            headers = List.copyOf(headers);
        }

        static Request of(String method, String target) {
            return new Request(method, target, List.of(), null, false);
        }

        Request header(String name, String byteValue) {
            List<String[]> more = new ArrayList<>(headers);
            more.add(new String[] {name, byteValue});
            return new Request(method, target, more, body, chunked);
        }

        Request withoutHeader(String name) {
            List<String[]> fewer = new ArrayList<>();
            for (String[] h : headers) {
                if (!h[0].equalsIgnoreCase(name)) {
                    fewer.add(h);
                }
            }
            return new Request(method, target, fewer, body, chunked);
        }

        Request replaceHeader(String name, String byteValue) {
            return withoutHeader(name).header(name, byteValue);
        }

        Request body(byte[] bytes) {
            return new Request(method, target, headers, bytes, chunked);
        }

        Request body(String utf8) {
            return body(utf8.getBytes(StandardCharsets.UTF_8));
        }

        Request chunked(boolean chunkedBody) {
            return new Request(method, target, headers, body, chunkedBody);
        }

        Request method(String newMethod) {
            return new Request(newMethod, target, headers, body, chunked);
        }

        Request target(String newTarget) {
            return new Request(method, newTarget, headers, body, chunked);
        }

        String headerValue(String name) {
            for (String[] h : headers) {
                if (h[0].equalsIgnoreCase(name)) {
                    return h[1];
                }
            }
            return null;
        }

        /** Bytes of the request line and the header section as sent (what the server's header limits count). */
        int headSize(int port) {
            return head(port).length;
        }

        byte[] head(int port) {
            StringBuilder out = new StringBuilder();
            out.append(method).append(' ').append(target).append(" HTTP/1.1\r\n");
            out.append("Host: 127.0.0.1:").append(port).append("\r\n");
            for (String[] h : headers) {
                out.append(h[0]).append(": ").append(h[1]).append("\r\n");
            }
            if (body != null) {
                if (chunked) {
                    out.append("Transfer-Encoding: chunked\r\n");
                } else {
                    out.append("Content-Length: ").append(body.length).append("\r\n");
                }
            }
            out.append("Connection: close\r\n\r\n");
            return out.toString().getBytes(StandardCharsets.ISO_8859_1);
        }

        /** Everything the client sent, as text: what a response may legitimately echo back. */
        String sentText() {
            StringBuilder out = new StringBuilder(target).append('\n').append(HostileHttp.decodePercent(target)).append('\n');
            for (String[] h : headers) {
                out.append(h[0]).append(": ").append(h[1]).append('\n')
                        .append(new String(h[1].getBytes(StandardCharsets.ISO_8859_1), StandardCharsets.UTF_8)).append('\n');
            }
            if (body != null) {
                String text = new String(body, StandardCharsets.UTF_8);
                out.append(text).append('\n').append(HostileHttp.unescapeJson(text));
            }
            return out.toString();
        }

        /** The request as a reproduction: every byte that is not printable ASCII shown as \xNN. */
        @Override
        public String toString() {
            StringBuilder out = new StringBuilder();
            out.append(method).append(' ').append(printable(target, 600)).append('\n');
            for (String[] h : headers) {
                out.append("  ").append(h[0]).append(": ").append(printable(h[1], 400)).append('\n');
            }
            if (body == null) {
                out.append("  (no body)");
            } else {
                out.append("  body (").append(body.length).append(" bytes").append(chunked ? ", chunked" : "").append("): ")
                        .append(printable(new String(body, StandardCharsets.ISO_8859_1), 3000));
            }
            return out.toString();
        }
    }

    /** A response; status -1 if none arrived (timeout, connection closed or reset first). */
    record Response(int status, List<String[]> headers, byte[] body, String failure, long millis) {

        String header(String name) {
            for (String[] h : headers) {
                if (h[0].equalsIgnoreCase(name)) {
                    return h[1];
                }
            }
            return null;
        }

        String bodyText() {
            return body == null ? "" : new String(body, StandardCharsets.UTF_8);
        }

        @Override
        public String toString() {
            StringBuilder out = new StringBuilder();
            out.append(status).append(failure == null ? "" : " (" + failure + ")").append(" in ").append(millis).append(" ms\n");
            for (String[] h : headers) {
                out.append("  ").append(h[0]).append(": ").append(printable(h[1], 300)).append('\n');
            }
            out.append("  body: ").append(printable(bodyText(), 3000));
            return out.toString();
        }
    }

    Response exchange(Request request) {
        long start = System.nanoTime();
        try (Socket socket = new Socket()) {
            socket.setSoTimeout(TIMEOUT_MILLIS);
            socket.setTcpNoDelay(true);
            socket.connect(new InetSocketAddress("127.0.0.1", port), TIMEOUT_MILLIS);
            OutputStream out = socket.getOutputStream();
            byte[] head = request.head(port);
            byte[] body = request.body() == null ? new byte[0] : request.body();
            Future<?> writer = null;
            if (body.length <= INLINE_BODY_BYTES) {
                writeAll(out, head, body, request.chunked());
            } else {
                // The server may refuse (413) before reading the body and close: keep reading meanwhile.
                writer = WRITERS.submit(() -> {
                    try {
                        writeAll(out, head, body, request.chunked());
                    } catch (IOException ignored) {
                        // the server stopped reading: its response says why
                    }
                });
            }
            try {
                return read(socket, "HEAD".equals(request.method()), start);
            } finally {
                if (writer != null) {
                    writer.cancel(true);
                }
            }
        } catch (SocketTimeoutException e) {
            return new Response(-1, List.of(), new byte[0], "no response within " + TIMEOUT_MILLIS + " ms", elapsed(start));
        } catch (IOException e) {
            return new Response(-1, List.of(), new byte[0], "connection failed: " + e, elapsed(start));
        }
    }

    private static void writeAll(OutputStream out, byte[] head, byte[] body, boolean chunked) throws IOException {
        out.write(head);
        if (chunked) {
            int chunk = 8192;
            for (int i = 0; i < body.length; i += chunk) {
                int n = Math.min(chunk, body.length - i);
                out.write((Integer.toHexString(n) + "\r\n").getBytes(StandardCharsets.ISO_8859_1));
                out.write(body, i, n);
                out.write("\r\n".getBytes(StandardCharsets.ISO_8859_1));
            }
            out.write("0\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
        } else {
            out.write(body);
        }
        out.flush();
    }

    private static Response read(Socket socket, boolean head, long start) throws IOException {
        InputStream in = new java.io.BufferedInputStream(socket.getInputStream());
        String statusLine;
        try {
            statusLine = line(in);
        } catch (IOException e) {
            return new Response(-1, List.of(), new byte[0], "no response: " + e, elapsed(start));
        }
        if (statusLine == null) {
            return new Response(-1, List.of(), new byte[0], "connection closed without a response", elapsed(start));
        }
        String[] parts = statusLine.split(" ", 3);
        if (parts.length < 2 || !parts[0].startsWith("HTTP/1.")) {
            return new Response(-1, List.of(), new byte[0], "not an HTTP response: " + printable(statusLine, 200), elapsed(start));
        }
        int status = Integer.parseInt(parts[1]);
        List<String[]> headers = new ArrayList<>();
        for (String header = line(in); header != null && !header.isEmpty(); header = line(in)) {
            int colon = header.indexOf(':');
            headers.add(colon < 0 ? new String[] {header, ""}
                    : new String[] {header.substring(0, colon).trim(), header.substring(colon + 1).trim()});
        }
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        String framing = null;
        String length = null;
        for (String[] h : headers) {
            if (h[0].equalsIgnoreCase("Transfer-Encoding")) {
                framing = h[1].toLowerCase(Locale.ROOT);
            } else if (h[0].equalsIgnoreCase("Content-Length")) {
                length = h[1];
            }
        }
        String failure = null;
        boolean eventStream = false;
        for (String[] h : headers) {
            eventStream |= h[0].equalsIgnoreCase("Content-Type") && h[1].toLowerCase(Locale.ROOT).startsWith("text/event-stream");
        }
        try {
            if (head || status == 204 || status == 304 || (status >= 100 && status < 200)) {
                // no body by definition
            } else if (framing != null && framing.contains("chunked")) {
                if (eventStream) {
                    socket.setSoTimeout(FIRST_EVENT_MILLIS); // a resumed stream may have nothing to say yet
                }
                for (int size = Integer.parseInt(line(in).split(";")[0].trim(), 16); size > 0;
                        size = Integer.parseInt(line(in).split(";")[0].trim(), 16)) {
                    body.write(in.readNBytes(size));
                    line(in);
                    if (eventStream && body.toString(StandardCharsets.UTF_8).contains("\n\n")) {
                        break; // a live stream never ends: its first complete event is the answer
                    }
                    if (elapsed(start) > TIMEOUT_MILLIS) {
                        failure = "body still streaming after " + TIMEOUT_MILLIS + " ms";
                        break;
                    }
                }
            } else if (length != null) {
                int n = Integer.parseInt(length);
                byte[] bytes = in.readNBytes(n);
                body.write(bytes);
                if (bytes.length < n) {
                    failure = "body truncated: " + bytes.length + " of " + n + " bytes";
                }
            } else {
                body.write(in.readAllBytes());
            }
        } catch (SocketTimeoutException e) {
            if (!eventStream) {
                failure = "body incomplete after " + TIMEOUT_MILLIS + " ms";
            } // else: an open stream with no event yet, which is a complete answer for the fuzz
        } catch (IOException | RuntimeException e) {
            failure = "broken body: " + e;
        }
        return new Response(status, headers, body.toByteArray(), failure, elapsed(start));
    }

    private static String line(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int c;
        while ((c = in.read()) != -1) {
            if (c == '\n') {
                byte[] bytes = out.toByteArray();
                int n = bytes.length > 0 && bytes[bytes.length - 1] == '\r' ? bytes.length - 1 : bytes.length;
                return new String(bytes, 0, n, StandardCharsets.ISO_8859_1);
            }
            out.write(c);
        }
        return out.size() == 0 ? null : out.toString(StandardCharsets.ISO_8859_1);
    }

    private static long elapsed(long start) {
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
    }

    /** UTF-8 text as a header "byte string" (one char per byte). */
    static String utf8(String text) {
        return new String(text.getBytes(StandardCharsets.UTF_8), StandardCharsets.ISO_8859_1);
    }

    /** Non-printable-ASCII characters as \xNN (or \\uNNNN above 0xFF), shortened to about max chars. */
    static String printable(String text, int max) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < text.length(); i++) {
            if (out.length() >= max) {
                out.append("... (").append(text.length()).append(" chars in all)");
                break;
            }
            char c = text.charAt(i);
            if (c >= 0x20 && c < 0x7F && c != '\\') {
                out.append(c);
            } else if (c == '\\') {
                out.append("\\\\");
            } else if (c <= 0xFF) {
                out.append(String.format("\\x%02X", (int) c));
            } else {
                out.append(String.format("\\u%04X", (int) c));
            }
        }
        return out.toString();
    }

    /** %XX decoded as UTF-8 (malformed escapes left as they are). */
    static String decodePercent(String text) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        for (int i = 0; i < bytes.length; i++) {
            if (bytes[i] == '%' && i + 2 < bytes.length && hex(bytes[i + 1]) >= 0 && hex(bytes[i + 2]) >= 0) {
                out.write(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
                i += 2;
            } else {
                out.write(bytes[i]);
            }
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    private static int hex(byte b) {
        return Character.digit((char) b, 16);
    }

    /** JSON \\uXXXX (and simple) escapes resolved, leniently: what the server sees inside string values. */
    static String unescapeJson(String text) {
        StringBuilder out = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '\\' && i + 1 < text.length()) {
                char n = text.charAt(i + 1);
                if (n == 'u' && i + 5 < text.length()) {
                    try {
                        out.append((char) Integer.parseInt(text.substring(i + 2, i + 6), 16));
                        i += 5;
                        continue;
                    } catch (NumberFormatException ignored) {
                        // not an escape
                    }
                }
                switch (n) {
                    case 'n' -> out.append('\n');
                    case 't' -> out.append('\t');
                    case 'r' -> out.append('\r');
                    case '"' -> out.append('"');
                    case '\\' -> out.append('\\');
                    case '/' -> out.append('/');
                    default -> out.append(c).append(n);
                }
                i++;
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }
}
