package io.paystream.testsupport;

import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.r2dbc.core.DatabaseClient;

/** The counterpart of {@link TestDatabaseProviderIntegrationTests} in the isolation check; order does not matter. */
@PaystreamIntegrationTest
class TestDatabaseIsolationIntegrationTests {

    @Autowired
    private DatabaseClient databaseClient;

    @Test
    void doesNotSeeTheRowsOrDatabaseOfOtherTestClasses() {
        IsolationProbe.assertSeesOnlyItsOwnRows(databaseClient, getClass());
        IsolationProbe.assertDatabaseDiffersFromOtherTestClasses(databaseClient, getClass());
    }
}
