package io.paystream.system;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import io.paystream.idempotency.IdempotencyKey;
import io.paystream.idempotency.StoredResponse;
import io.swagger.v3.oas.models.Components;
import io.swagger.v3.oas.models.OpenAPI;
import io.swagger.v3.oas.models.Operation;
import io.swagger.v3.oas.models.PathItem;
import io.swagger.v3.oas.models.headers.Header;
import io.swagger.v3.oas.models.info.Info;
import io.swagger.v3.oas.models.media.ArraySchema;
import io.swagger.v3.oas.models.media.Content;
import io.swagger.v3.oas.models.media.IntegerSchema;
import io.swagger.v3.oas.models.media.MediaType;
import io.swagger.v3.oas.models.media.ObjectSchema;
import io.swagger.v3.oas.models.media.Schema;
import io.swagger.v3.oas.models.media.StringSchema;
import io.swagger.v3.oas.models.parameters.HeaderParameter;
import io.swagger.v3.oas.models.parameters.Parameter;
import io.swagger.v3.oas.models.responses.ApiResponse;
import io.swagger.v3.oas.models.responses.ApiResponses;
import io.swagger.v3.oas.models.security.SecurityRequirement;
import io.swagger.v3.oas.models.security.SecurityScheme;
import org.springdoc.core.customizers.OpenApiCustomizer;
import org.springframework.stereotype.Component;

/**
 * What the OpenAPI document at {@code /v3/api-docs} says beyond what springdoc reads from the
 * controllers: the two ways to authenticate, the headers every answer carries, and the problem
 * responses with every {@code code} of {@link Problem}, generated from the enum so the document
 * cannot fall behind it. Controllers carry only a summary per operation.
 */
@Component
class ApiDocumentation implements OpenApiCustomizer {

    static final String API_KEY_SCHEME = "apiKey";
    static final String JWT_SCHEME = "jwt";
    static final String PROBLEM_SCHEMA = "Problem";

    private static final String RATE_LIMIT_LIMIT = "RateLimit-Limit";
    private static final String RATE_LIMIT_REMAINING = "RateLimit-Remaining";
    private static final String RATE_LIMIT_RESET = "RateLimit-Reset";
    private static final String RETRY_AFTER = "Retry-After";
    private static final String LAST_EVENT_ID = "Last-Event-ID";

    @Override
    public void customise(OpenAPI openApi) {
        openApi.info(new Info().title("Paystream API").version("v1").description(description()));
        Components components = openApi.getComponents() == null ? new Components() : openApi.getComponents();
        openApi.components(components);
        components.addSecuritySchemes(API_KEY_SCHEME, new SecurityScheme().type(SecurityScheme.Type.HTTP)
                .scheme("bearer").bearerFormat("psk_...")
                .description("A Paystream API key: `Authorization: Bearer psk_...`. Admin keys create keys and deposit."));
        components.addSecuritySchemes(JWT_SCHEME, new SecurityScheme().type(SecurityScheme.Type.HTTP)
                .scheme("bearer").bearerFormat("JWT")
                .description("A JWT from the configured OAuth2 issuer (PAYSTREAM_JWT_ISSUER_URI); its subject is the client."));
        components.addSchemas(PROBLEM_SCHEMA, problemSchema());
        headers().forEach(components::addHeaders);
        components.addParameters(RequestIds.HEADER, new HeaderParameter().name(RequestIds.HEADER).required(false)
                .description("Your id for this request (1 to " + RequestIds.MAX_CHARS
                        + " letters, digits and . _ : -); anything else is replaced by a generated one."
                        + " Sent back in the X-Request-Id response header and written in every log line of the request.")
                .schema(new StringSchema().maxLength(RequestIds.MAX_CHARS).pattern("^[A-Za-z0-9._:-]+$")));

        if (openApi.getPaths() == null) {
            return;
        }
        openApi.getPaths().forEach((path, item) -> item.readOperationsMap().forEach((method, operation) ->
                document(method, operation)));
    }

    private static void document(PathItem.HttpMethod method, Operation operation) {
        operation.security(List.of(new SecurityRequirement().addList(API_KEY_SCHEME),
                new SecurityRequirement().addList(JWT_SCHEME)));
        List<Parameter> parameters = operation.getParameters() == null ? new ArrayList<>()
                : new ArrayList<>(operation.getParameters());
        boolean movesMoney = false;
        for (Parameter parameter : parameters) {
            if (IdempotencyKey.HEADER.equalsIgnoreCase(parameter.getName())) {
                movesMoney = true;
                // Required in fact: without it the request is refused (idempotency_key_required).
                parameter.required(true).description("Your unique key for this money movement (1 to "
                        + IdempotencyKey.MAX_KEY_CHARS + " printable ASCII characters). The same key with the same"
                        + " request answers the stored response again (with Idempotent-Replayed: true), never moving"
                        + " money twice; with a different request: 422 idempotency_key_reused; while the first is"
                        + " still running: 409 idempotency_request_in_progress. Keys are scoped to the client.")
                        .schema(new StringSchema().minLength(1).maxLength(IdempotencyKey.MAX_KEY_CHARS));
            } else if (LAST_EVENT_ID.equalsIgnoreCase(parameter.getName())) {
                parameter.description("Resume after this event id (a balance version): what a browser's EventSource"
                        + " sends when it reconnects. Takes precedence over ?after=.");
            }
        }
        String requestIdRef = "#/components/parameters/" + RequestIds.HEADER;
        if (parameters.stream().noneMatch(p -> requestIdRef.equals(p.get$ref()))) {
            parameters.add(new Parameter().$ref(requestIdRef));
        }
        operation.parameters(parameters);

        ApiResponses responses = operation.getResponses() == null ? new ApiResponses() : operation.getResponses();
        operation.responses(responses);
        for (ApiResponse response : responses.values()) {
            addHeaders(response, RequestIds.HEADER, RATE_LIMIT_LIMIT, RATE_LIMIT_REMAINING, RATE_LIMIT_RESET);
            if (movesMoney) {
                addHeaders(response, StoredResponse.REPLAYED_HEADER);
            }
        }
        problem(responses, "400", "The request is not valid (see code and errors)");
        problem(responses, "401", "No API key or token, or an unknown, revoked or expired one");
        problem(responses, "403", "The caller's role may not do this, or a browser origin is not allowed");
        if (method == PathItem.HttpMethod.POST) {
            problem(responses, "413", "The request body is too large");
            problem(responses, "415", "Send the body as application/json");
        }
        if (operation.getParameters().stream().anyMatch(p -> "path".equals(p.getIn()))) {
            problem(responses, "404", "Not found, or not the caller's (the same answer, on purpose)");
        }
        if (movesMoney) {
            problem(responses, "409", "A request with this Idempotency-Key is in progress, or the hold is settled");
            problem(responses, "422", "Refused: nothing moved. Stored with the Idempotency-Key: a replay is refused alike");
        }
        addHeaders(problem(responses, "429", "Too many requests for this client, or too many open streams"),
                RETRY_AFTER);
        addHeaders(problem(responses, "503", "Busy, timed out or the database is unavailable; nothing was applied."
                + " Retry after Retry-After, with the same Idempotency-Key"), RETRY_AFTER);
        problem(responses, "500", "An unexpected error; the body says nothing more (see the logs by X-Request-Id)");
    }

    private static ApiResponse problem(ApiResponses responses, String status, String description) {
        ApiResponse response = responses.get(status);
        if (response == null) {
            response = new ApiResponse().description(description);
            responses.addApiResponse(status, response);
        }
        response.content(new Content().addMediaType(org.springframework.http.MediaType.APPLICATION_PROBLEM_JSON_VALUE,
                new MediaType().schema(new Schema<>().$ref("#/components/schemas/" + PROBLEM_SCHEMA))));
        addHeaders(response, RequestIds.HEADER, RATE_LIMIT_LIMIT, RATE_LIMIT_REMAINING, RATE_LIMIT_RESET);
        return response;
    }

    private static void addHeaders(ApiResponse response, String... names) {
        for (String name : names) {
            response.addHeaderObject(name, new Header().$ref("#/components/headers/" + name));
        }
    }

    private static Map<String, Header> headers() {
        Map<String, Header> headers = new LinkedHashMap<>();
        headers.put(RequestIds.HEADER, new Header().schema(new StringSchema())
                .description("This request's id: the one sent in X-Request-Id if it was sane, else a generated one"));
        headers.put(StoredResponse.REPLAYED_HEADER, new Header().schema(new StringSchema()._enum(List.of("true")))
                .description("Present (true) when this is the stored response to an earlier request with the same"
                        + " Idempotency-Key: nothing was done again"));
        headers.put(RETRY_AFTER, new Header().schema(new IntegerSchema())
                .description("Seconds to wait before retrying"));
        headers.put(RATE_LIMIT_LIMIT, new Header().schema(new IntegerSchema())
                .description("Requests this client may send at once (its burst), per replica"));
        headers.put(RATE_LIMIT_REMAINING, new Header().schema(new IntegerSchema())
                .description("Requests left in this client's bucket"));
        headers.put(RATE_LIMIT_RESET, new Header().schema(new IntegerSchema())
                .description("Seconds until the bucket has a request again"));
        return headers;
    }

    /** RFC 9457 problem details, with Paystream's stable {@code code}. */
    private static Schema<?> problemSchema() {
        List<String> codes = new ArrayList<>();
        for (Problem problem : Problem.values()) {
            codes.add(problem.code());
        }
        return new ObjectSchema()
                .description("An RFC 9457 problem (application/problem+json). Switch on `code`, never on the text.")
                .addProperty("type", new StringSchema().format("uri").description("https://paystream.io/problems/<code>"))
                .addProperty("title", new StringSchema())
                .addProperty("status", new IntegerSchema())
                .addProperty("detail", new StringSchema().description("For people; it may change"))
                .addProperty("instance", new StringSchema().description("The request path"))
                .addProperty("code", new StringSchema()._enum(codes).description("The stable, machine-readable reason"))
                .addProperty("item", new IntegerSchema().description("The batch item (0-based) a refusal is about"))
                .addProperty("errors", new ArraySchema().items(new ObjectSchema()
                        .addProperty("field", new StringSchema())
                        .addProperty("message", new StringSchema())))
                .required(List.of("type", "title", "status", "code"));
    }

    /** The API's description, with the table of problem codes generated from {@link Problem}. */
    private static String description() {
        StringBuilder text = new StringBuilder("""
                A payment API on an insert-only PostgreSQL ledger. Authenticate with `Authorization: Bearer <API key>`
                (or a JWT when an OAuth2 issuer is configured). Every request that moves money needs an
                `Idempotency-Key`. Every answer carries `X-Request-Id` and, for authenticated callers, the `RateLimit-*`
                headers. Errors are `application/problem+json`; their `code` is one of:

                | code | status | meaning |
                |---|---|---|
                """);
        for (Problem problem : Problem.values()) {
            text.append("| `").append(problem.code()).append("` | ").append(problem.status().value()).append(" | ")
                    .append(problem.title()).append(" |\n");
        }
        return text.toString();
    }
}
