package io.paystream.testsupport;

import org.springframework.boot.test.context.TestConfiguration;
import org.springframework.boot.webtestclient.autoconfigure.WebTestClientBuilderCustomizer;
import org.springframework.context.annotation.Bean;
import org.springframework.http.HttpHeaders;

/**
 * The admin API key of every test context, and a WebTestClient that sends it unless a test sets its
 * own Authorization header. Tests of authorization create client keys through the API.
 */
@TestConfiguration(proxyBeanMethods = false)
public class TestAuthentication {

    public static final String ADMIN_KEY = "psk_test_admin_0123456789abcdefghijklmnopqrstuvwxyz";

    public static String bearer(String key) {
        return "Bearer " + key;
    }

    @Bean
    WebTestClientBuilderCustomizer adminAuthorization() {
        return builder -> builder.defaultHeader(HttpHeaders.AUTHORIZATION, bearer(ADMIN_KEY));
    }
}
