package io.paystream.security;

import java.util.UUID;

import io.paystream.system.PlainText;
import jakarta.validation.constraints.NotBlank;
import jakarta.validation.constraints.NotNull;
import jakarta.validation.constraints.Pattern;
import jakarta.validation.constraints.Size;

/**
 * {@code POST /v1/api-keys}. A new key starts a new client unless {@code clientId} names an existing
 * one (a second key for the same client, to rotate without losing its accounts).
 */
record CreateApiKeyRequest(
        @NotBlank @Size(max = 100) @PlainText String name,
        @NotNull @Pattern(regexp = "admin|client", message = "must be admin or client") String role,
        UUID clientId) {
}
