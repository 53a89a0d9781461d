package io.paystream.testsupport;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicReference;

import org.springframework.r2dbc.core.DatabaseClient;
import reactor.test.StepVerifier;

/**
 * Shared by test classes to show that they do not share a database: each writes a row naming itself into a
 * scratch table and must read back only that row, and each records the name of its database here so whichever
 * class runs later can check the names differ and that the earlier class's database is gone.
 */
final class IsolationProbe {

    private static final Duration TIMEOUT = Duration.ofSeconds(10);

    /** Test class name to the database it saw, across all test classes of this JVM. */
    private static final Map<String, String> DATABASE_BY_TEST_CLASS = new ConcurrentHashMap<>();

    private IsolationProbe() {
    }

    static void assertSeesOnlyItsOwnRows(DatabaseClient client, Class<?> testClass) {
        String label = testClass.getName();
        client.sql("CREATE TABLE IF NOT EXISTS isolation_probe (label text PRIMARY KEY)")
                .then()
                .then(client.sql("INSERT INTO isolation_probe (label) VALUES (:label) ON CONFLICT DO NOTHING")
                        .bind("label", label)
                        .then())
                .thenMany(client.sql("SELECT label FROM isolation_probe").map(row -> row.get("label", String.class)).all())
                .collectList()
                .as(StepVerifier::create)
                .assertNext(labels -> assertThat(labels).containsExactly(label))
                .expectComplete()
                .verify(TIMEOUT);
    }

    static void assertDatabaseDiffersFromOtherTestClasses(DatabaseClient client, Class<?> testClass) {
        AtomicReference<String> database = new AtomicReference<>();
        client.sql("SELECT current_database() AS name")
                .map(row -> row.get("name", String.class))
                .one()
                .as(StepVerifier::create)
                .consumeNextWith(database::set)
                .expectComplete()
                .verify(TIMEOUT);
        DATABASE_BY_TEST_CLASS.put(testClass.getName(), database.get());
        List<String> othersDatabases = DATABASE_BY_TEST_CLASS.entrySet().stream()
                .filter(entry -> !entry.getKey().equals(testClass.getName()))
                .map(Map.Entry::getValue)
                .toList();
        assertThat(othersDatabases).as("databases seen by other test classes").doesNotContain(database.get());
        // Test classes run one after the other and each closes its context when done, which drops its database.
        for (String finishedClassDatabase : othersDatabases) {
            client.sql("SELECT count(*) AS found FROM pg_database WHERE datname = :name")
                    .bind("name", finishedClassDatabase)
                    .map(row -> row.get("found", Long.class))
                    .one()
                    .as(StepVerifier::create)
                    .expectNext(0L)
                    .as("database " + finishedClassDatabase + " of a finished test class is dropped")
                    .expectComplete()
                    .verify(TIMEOUT);
        }
    }
}
