package io.paystream.testsupport;

import java.util.LinkedHashMap;
import java.util.Map;

import org.springframework.beans.factory.DisposableBean;
import org.springframework.beans.factory.support.DefaultSingletonBeanRegistry;
import org.springframework.context.ApplicationContextInitializer;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.context.event.ContextClosedEvent;
import org.springframework.core.env.MapPropertySource;
import org.springframework.test.context.support.TestPropertySourceUtils;

/**
 * Gives the Spring test context its own fresh database, a copy of the migrated template (see
 * {@link TestDatabaseProvider}), and drops it when the context closes.
 *
 * <p>Sets {@code spring.r2dbc.url/username/password} and {@code spring.flyway.url/user/password} to that
 * database, {@code spring.flyway.enabled=false} (the template is migrated already), and the
 * {@code paystream.test.*} properties of {@link TestDatabase}. The {@link TestDatabase} is also a bean.
 */
public class TestDatabaseInitializer implements ApplicationContextInitializer<ConfigurableApplicationContext> {

    static final String PROPERTY_SOURCE_NAME = "paystreamTestDatabase";

    static final String BEAN_NAME = "paystreamTestDatabase";

    @Override
    public void initialize(ConfigurableApplicationContext context) {
        TestDatabaseProvider provider = TestDatabaseProvider.instance();
        TestDatabase database = provider.createDatabase();

        Map<String, Object> properties = new LinkedHashMap<>();
        properties.put("spring.r2dbc.url", database.r2dbcUrl());
        properties.put("spring.r2dbc.username", database.username());
        properties.put("spring.r2dbc.password", database.password());
        properties.put("spring.flyway.enabled", "false");
        properties.put("spring.flyway.url", database.jdbcUrl());
        properties.put("spring.flyway.user", database.username());
        properties.put("spring.flyway.password", database.password());
        properties.put(TestDatabase.NAME_PROPERTY, database.name());
        properties.put(TestDatabase.JDBC_URL_PROPERTY, database.jdbcUrl());
        properties.put(TestDatabase.R2DBC_URL_PROPERTY, database.r2dbcUrl());
        // First: these must win over application.properties, environment variables such as SPRING_R2DBC_URL, and
        // whatever else would point the test at a database it does not own.
        context.getEnvironment().getPropertySources().addFirst(new MapPropertySource(PROPERTY_SOURCE_NAME, properties));
        context.getBeanFactory().registerSingleton(BEAN_NAME, database);

        // Test defaults that a test class may still override with @TestPropertySource: the admin key the
        // test clients send, and no rate limit (the concurrency tests send bursts on purpose).
        Map<String, Object> defaults = Map.of(
                "paystream.security.admin-api-key", TestAuthentication.ADMIN_KEY,
                "paystream.rate-limit.requests-per-second", "0");
        MapPropertySource testDefaults = new MapPropertySource(PROPERTY_SOURCE_NAME + "Defaults", defaults);
        var sources = context.getEnvironment().getPropertySources();
        if (sources.contains(TestPropertySourceUtils.INLINED_PROPERTIES_PROPERTY_SOURCE_NAME)) {
            sources.addAfter(TestPropertySourceUtils.INLINED_PROPERTIES_PROPERTY_SOURCE_NAME, testDefaults);
        } else {
            sources.addAfter(PROPERTY_SOURCE_NAME, testDefaults);
        }

        DisposableBean dropDatabase = () -> provider.dropDatabase(database.name());
        if (context.getBeanFactory() instanceof DefaultSingletonBeanRegistry registry) {
            // Disposable beans are destroyed in reverse order of registration, so this one, registered before
            // any application bean, runs after the connection pool has been closed: no connection gets killed
            // under a pool that is still in use.
            registry.registerDisposableBean(BEAN_NAME + ".drop", dropDatabase);
        }
        else {
            context.addApplicationListener(event -> {
                if (event instanceof ContextClosedEvent closed && closed.getApplicationContext() == context) {
                    provider.dropDatabase(database.name());
                }
            });
        }
    }
}
