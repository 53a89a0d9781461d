package io.paystream.testsupport;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;

import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.core.env.Environment;
import org.springframework.r2dbc.core.DatabaseClient;
import org.springframework.test.context.TestPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;
import reactor.test.StepVerifier;

@PaystreamIntegrationTest
@TestPropertySource(properties = "management.endpoint.health.show-components=always")
class TestDatabaseProviderIntegrationTests {

    private static final Duration TIMEOUT = Duration.ofSeconds(10);

    @Autowired
    private DatabaseClient databaseClient;

    @Autowired
    private WebTestClient webTestClient;

    @Autowired
    private TestDatabase testDatabase;

    @Autowired
    private Environment environment;

    @Test
    void talksToARealPostgresqlServer() {
        databaseClient.sql("SHOW server_version_num")
                .map(row -> Integer.parseInt(row.get(0, String.class)))
                .one()
                .as(StepVerifier::create)
                .assertNext(version -> assertThat(version).isGreaterThanOrEqualTo(170000))
                .expectComplete()
                .verify(TIMEOUT);
        databaseClient.sql("SELECT version()")
                .map(row -> row.get(0, String.class))
                .one()
                .as(StepVerifier::create)
                .assertNext(version -> assertThat(version).startsWith("PostgreSQL "))
                .expectComplete()
                .verify(TIMEOUT);
    }

    @Test
    void usesItsOwnCopyOfTheMigratedTemplate() {
        assertThat(TestDatabase.from(environment)).isEqualTo(testDatabase);
        assertThat(testDatabase.name()).startsWith("test_");
        assertThat(testDatabase.r2dbcUrl()).isEqualTo(environment.getProperty("spring.r2dbc.url"));
        databaseClient.sql("SELECT current_database() AS name")
                .map(row -> row.get("name", String.class))
                .one()
                .as(StepVerifier::create)
                .expectNext(testDatabase.name())
                .expectComplete()
                .verify(TIMEOUT);
        // The copy carries the template's Flyway history, so its schema is the migrated one.
        databaseClient.sql("SELECT count(*) AS applied FROM flyway_schema_history WHERE success")
                .map(row -> row.get("applied", Long.class))
                .one()
                .as(StepVerifier::create)
                .assertNext(applied -> assertThat(applied).isPositive())
                .expectComplete()
                .verify(TIMEOUT);
    }

    @Test
    void healthIsUpIncludingTheDatabase() {
        webTestClient.get()
                .uri("/actuator/health")
                .exchange()
                .expectStatus().isOk()
                .expectBody()
                .jsonPath("$.status").isEqualTo("UP")
                .jsonPath("$.components.r2dbc.status").isEqualTo("UP");
    }

    @Test
    void doesNotSeeTheRowsOrDatabaseOfOtherTestClasses() {
        IsolationProbe.assertSeesOnlyItsOwnRows(databaseClient, getClass());
        IsolationProbe.assertDatabaseDiffersFromOtherTestClasses(databaseClient, getClass());
    }
}
