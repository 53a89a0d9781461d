package io.paystream.security;

import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.tags.Tag;
import java.net.URI;
import java.util.List;
import java.util.UUID;

import jakarta.validation.Valid;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.DeleteMapping;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RestController;
import reactor.core.publisher.Mono;

/** Managing API keys: admins only (see {@link SecurityConfiguration}). */
@Tag(name = "API keys", description = "Managing API keys: admins only")
@RestController
@RequestMapping(path = "/v1/api-keys", produces = MediaType.APPLICATION_JSON_VALUE)
class ApiKeyController {

    /** Keys listed at most: a deployment with more needs paging, not a bigger response. */
    static final int LIST_MAX = 1_000;

    private final ApiKeys keys;

    ApiKeyController(ApiKeys keys) {
        this.keys = keys;
    }

    @Operation(summary = "Create an API key (admin); the key is shown only in this answer")
    @PostMapping(consumes = MediaType.APPLICATION_JSON_VALUE)
    Mono<ResponseEntity<ApiKey>> create(@Valid @RequestBody CreateApiKeyRequest request) {
        return keys.create(request).map(key -> ResponseEntity.created(URI.create("/v1/api-keys/" + key.id()))
                .header("Cache-Control", "no-store").body(key));
    }

    @Operation(summary = "List API keys (admin), without the keys themselves")
    @GetMapping
    Mono<List<ApiKey>> list() {
        return keys.list(LIST_MAX).collectList();
    }

    @Operation(summary = "Revoke an API key (admin)")
    @DeleteMapping("/{id}")
    Mono<ResponseEntity<Void>> revoke(@PathVariable UUID id) {
        return keys.revoke(id).thenReturn(ResponseEntity.noContent().build());
    }
}
