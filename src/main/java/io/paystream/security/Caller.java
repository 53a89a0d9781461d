package io.paystream.security;

import java.util.UUID;

import org.springframework.security.core.Authentication;
import org.springframework.security.core.context.ReactiveSecurityContextHolder;
import reactor.core.publisher.Mono;

/**
 * Who is calling: a client (which owns the accounts it opened) or an admin (which may see and do
 * everything). {@code clientId} scopes ownership and idempotency keys.
 */
public record Caller(UUID clientId, Role role, String name) {

    public enum Role {
        ADMIN,
        CLIENT
    }

    public boolean isAdmin() {
        return role == Role.ADMIN;
    }

    /** Whether this caller may read and debit an account owned by {@code ownerId}. */
    public boolean owns(UUID ownerId) {
        return isAdmin() || clientId.equals(ownerId);
    }

    /** The authenticated caller of the current request. */
    public static Mono<Caller> current() {
        return ReactiveSecurityContextHolder.getContext()
                .mapNotNull(context -> context.getAuthentication())
                .map(Authentication::getPrincipal)
                .cast(Caller.class);
    }
}
