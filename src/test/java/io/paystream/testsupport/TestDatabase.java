package io.paystream.testsupport;

import org.springframework.core.env.Environment;

/**
 * The fresh database of one Spring test context: a copy of the migrated template, dropped when the context
 * closes. Available as a bean and as {@code paystream.test.*} properties of the context's environment.
 */
public record TestDatabase(String name, String jdbcUrl, String r2dbcUrl, String username, String password) {

    public static final String NAME_PROPERTY = "paystream.test.database-name";

    public static final String JDBC_URL_PROPERTY = "paystream.test.jdbc-url";

    public static final String R2DBC_URL_PROPERTY = "paystream.test.r2dbc-url";

    /** The database of the context that owns {@code environment}; fails when it was not set up by {@link TestDatabaseInitializer}. */
    public static TestDatabase from(Environment environment) {
        return new TestDatabase(environment.getRequiredProperty(NAME_PROPERTY),
                environment.getRequiredProperty(JDBC_URL_PROPERTY),
                environment.getRequiredProperty(R2DBC_URL_PROPERTY),
                environment.getRequiredProperty("spring.r2dbc.username"),
                environment.getProperty("spring.r2dbc.password", ""));
    }

    @Override
    public String toString() {
        return "TestDatabase[" + name + " at " + jdbcUrl + "]";
    }
}
