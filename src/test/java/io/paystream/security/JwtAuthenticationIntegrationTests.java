package io.paystream.security;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.interfaces.RSAPublicKey;
import java.time.Instant;
import java.util.Date;
import java.util.Map;

import com.nimbusds.jose.JOSEObjectType;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSHeader;
import com.nimbusds.jose.crypto.RSASSASigner;
import com.nimbusds.jose.jwk.JWKSet;
import com.nimbusds.jose.jwk.RSAKey;
import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.SignedJWT;
import com.sun.net.httpserver.HttpServer;
import io.paystream.testsupport.PaystreamIntegrationTest;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.core.ParameterizedTypeReference;
import org.springframework.http.MediaType;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * With an OAuth2 issuer configured, its JWTs are bearer tokens too: the subject is a client that
 * owns what it opens. The issuer here is a small OpenID discovery + JWKS server on loopback.
 */
@PaystreamIntegrationTest
class JwtAuthenticationIntegrationTests {

    private static final KeyPair SIGNING = rsa();
    private static final KeyPair STRANGER = rsa();
    private static final HttpServer ISSUER = issuer();

    @DynamicPropertySource
    static void issuerUri(DynamicPropertyRegistry registry) {
        registry.add("paystream.security.jwt-issuer-uri", JwtAuthenticationIntegrationTests::issuerUri);
    }

    @AfterAll
    static void stopIssuer() {
        ISSUER.stop(0);
    }

    @LocalServerPort
    int port;

    @Test
    void aSignedTokenFromTheIssuerIsAClientThatOwnsWhatItOpens() {
        // A token with an unknown key makes the server fetch the issuer's keys again: on a loaded
        // machine that exceeded WebTestClient's default 5 s once. The answer is checked either way.
        WebTestClient client = WebTestClient.bindToServer().baseUrl("http://127.0.0.1:" + port)
                .responseTimeout(java.time.Duration.ofSeconds(30)).build();
        String alice = token("alice", SIGNING, Instant.now().plusSeconds(300));
        String bob = token("bob", SIGNING, Instant.now().plusSeconds(300));

        Map<String, Object> account = client.post().uri("/v1/accounts").header("Authorization", "Bearer " + alice)
                .contentType(MediaType.APPLICATION_JSON).bodyValue("{\"currency\":\"EUR\",\"name\":\"jwt\"}")
                .exchange().expectStatus().isCreated()
                .expectBody(new ParameterizedTypeReference<Map<String, Object>>() {
                }).returnResult().getResponseBody();
        String id = (String) account.get("id");

        client.get().uri("/v1/accounts/" + id).header("Authorization", "Bearer " + alice).exchange().expectStatus().isOk();
        client.get().uri("/v1/accounts/" + id).header("Authorization", "Bearer " + bob).exchange().expectStatus().isNotFound();
        // A client, not an admin.
        client.get().uri("/v1/api-keys").header("Authorization", "Bearer " + alice).exchange().expectStatus().isForbidden();
        // Forged, expired or garbage tokens are refused.
        client.get().uri("/v1/accounts").header("Authorization", "Bearer " + token("alice", STRANGER, Instant.now().plusSeconds(300)))
                .exchange().expectStatus().isUnauthorized();
        client.get().uri("/v1/accounts").header("Authorization", "Bearer " + token("alice", SIGNING, Instant.now().minusSeconds(600)))
                .exchange().expectStatus().isUnauthorized();
        client.get().uri("/v1/accounts").header("Authorization", "Bearer a.b.c").exchange().expectStatus().isUnauthorized();
        // API keys still work beside JWTs.
        WebTestClient admin = WebTestClient.bindToServer().baseUrl("http://127.0.0.1:" + port)
                .defaultHeader("Authorization", "Bearer " + io.paystream.testsupport.TestAuthentication.ADMIN_KEY)
                .responseTimeout(java.time.Duration.ofSeconds(30)).build();
        admin.get().uri("/v1/accounts/" + id).exchange().expectStatus().isOk();
    }

    private static String token(String subject, KeyPair key, Instant expiresAt) {
        try {
            SignedJWT jwt = new SignedJWT(new JWSHeader.Builder(JWSAlgorithm.RS256).keyID("test").type(JOSEObjectType.JWT).build(),
                    new JWTClaimsSet.Builder().issuer(issuerUri()).subject(subject)
                            .issueTime(Date.from(expiresAt.minusSeconds(600))).expirationTime(Date.from(expiresAt)).build());
            jwt.sign(new RSASSASigner(key.getPrivate()));
            return jwt.serialize();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private static String issuerUri() {
        return "http://127.0.0.1:" + ISSUER.getAddress().getPort();
    }

    private static KeyPair rsa() {
        try {
            KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
            generator.initialize(2048);
            return generator.generateKeyPair();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private static HttpServer issuer() {
        try {
            HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
            server.createContext("/.well-known/openid-configuration", exchange -> respond(exchange,
                    "{\"issuer\":\"" + issuerUri(server) + "\",\"jwks_uri\":\"" + issuerUri(server) + "/jwks\","
                            + "\"subject_types_supported\":[\"public\"],\"id_token_signing_alg_values_supported\":[\"RS256\"]}"));
            server.createContext("/jwks", exchange -> respond(exchange,
                    new JWKSet(new RSAKey.Builder((RSAPublicKey) SIGNING.getPublic()).keyID("test").build()).toString()));
            server.start();
            return server;
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String issuerUri(HttpServer server) {
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    private static void respond(com.sun.net.httpserver.HttpExchange exchange, String json) throws IOException {
        byte[] body = json.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(200, body.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
        }
    }
}
