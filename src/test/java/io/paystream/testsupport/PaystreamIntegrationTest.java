package io.paystream.testsupport;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Inherited;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.context.annotation.Import;
import org.springframework.core.annotation.AliasFor;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.ContextConfiguration;

/**
 * A full-stack test of the application on a random port, with an injectable {@code WebTestClient} and its own
 * fresh, migrated PostgreSQL database ({@link TestDatabaseInitializer}).
 *
 * <p>Each test class gets its own context and database: the context is closed after the class, which also
 * closes its connection pool and drops the database.
 */
@Target(ElementType.TYPE)
@Retention(RetentionPolicy.RUNTIME)
@Documented
@Inherited
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@ContextConfiguration(initializers = TestDatabaseInitializer.class)
@DirtiesContext(classMode = DirtiesContext.ClassMode.AFTER_CLASS)
// 30 s, not the default 5 s: the first request of a kind (class loading, JIT) on a loaded 2-core machine
// once took longer than 5 s. A test that needs a tight bound says so itself.
@AutoConfigureWebTestClient(timeout = "30s")
@Import(TestAuthentication.class)
public @interface PaystreamIntegrationTest {

    /** Extra {@code key=value} properties, as in {@link SpringBootTest#properties()}. */
    @AliasFor(annotation = SpringBootTest.class, attribute = "properties")
    String[] properties() default {};
}
