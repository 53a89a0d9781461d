package io.paystream.account;

import java.net.URI;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.List;
import java.util.UUID;

import io.paystream.security.Caller;
import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.tags.Tag;
import jakarta.validation.Valid;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.security.core.annotation.AuthenticationPrincipal;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RequestParam;
import org.springframework.web.bind.annotation.RestController;
import reactor.core.publisher.Mono;

@Tag(name = "Accounts", description = "Accounts, balances and their history")
@RestController
@RequestMapping(path = "/v1/accounts", produces = MediaType.APPLICATION_JSON_VALUE)
class AccountController {

    /** Rows per page: a page is one index range scan, so a client cannot make a read unbounded. */
    static final int ENTRIES_PAGE_MAX = 200;
    static final int ENTRIES_PAGE_DEFAULT = 50;

    private final AccountRepository accounts;

    AccountController(AccountRepository accounts) {
        this.accounts = accounts;
    }

    @Operation(summary = "Open an account")
    @PostMapping(consumes = MediaType.APPLICATION_JSON_VALUE)
    Mono<ResponseEntity<Account>> create(@Valid @RequestBody CreateAccountRequest request,
            @AuthenticationPrincipal Caller caller) {
        return accounts.create(request, caller)
                .map(account -> ResponseEntity.created(URI.create("/v1/accounts/" + account.id())).body(account));
    }

    /** The caller's accounts (an admin's: all), in id order; {@code after} is the last id of the previous page. */
    @Operation(summary = "List the caller's accounts, a page at a time")
    @GetMapping
    Mono<AccountPage> list(@RequestParam(required = false) Integer limit, @RequestParam(required = false) UUID after,
            @AuthenticationPrincipal Caller caller) {
        int pageSize = pageSize(limit);
        return accounts.list(caller, after == null ? new UUID(0, 0) : after, pageSize + 1)
                .collectList()
                .map(rows -> {
                    boolean hasMore = rows.size() > pageSize;
                    List<Account> data = hasMore ? rows.subList(0, pageSize) : rows;
                    return new AccountPage(data, hasMore, hasMore ? data.get(data.size() - 1).id().toString() : null);
                });
    }

    @Operation(summary = "Read an account")
    @GetMapping("/{id}")
    Mono<Account> get(@PathVariable UUID id, @AuthenticationPrincipal Caller caller) {
        return accounts.find(id, caller).switchIfEmpty(notFound(id));
    }

    @Operation(summary = "Read an account's balance, now or as of an instant")
    @GetMapping("/{id}/balance")
    Mono<Balance> balance(@PathVariable UUID id, @RequestParam(required = false) String asOf,
            @AuthenticationPrincipal Caller caller) {
        if (asOf != null) {
            return accounts.balanceAsOf(id, parseInstant(asOf), caller).switchIfEmpty(notFound(id));
        }
        return accounts.find(id, caller)
                .map(a -> new Balance(a.id(), a.currency(), a.balance(), a.held(), a.available(), a.version(),
                        a.updatedAt() != null ? a.updatedAt() : a.createdAt()))
                .switchIfEmpty(notFound(id));
    }

    @Operation(summary = "List an account's entries, newest first, a page at a time")
    @GetMapping("/{id}/entries")
    Mono<EntryPage> entries(@PathVariable UUID id, @RequestParam(required = false) Integer limit,
            @RequestParam(required = false) Long after, @AuthenticationPrincipal Caller caller) {
        int pageSize = pageSize(limit);
        if (after != null && after < 1) {
            return Mono.error(ApiException.invalidField("after", "must be a cursor from a previous page"));
        }
        long beforeVersion = after == null ? Long.MAX_VALUE : after;
        return accounts.find(id, caller).switchIfEmpty(notFound(id))
                // One extra row tells whether another page exists without a count over the history.
                .flatMap(account -> accounts.entries(id, beforeVersion, pageSize + 1).collectList())
                .map(rows -> page(rows, pageSize));
    }

    private static int pageSize(Integer limit) {
        int pageSize = limit == null ? ENTRIES_PAGE_DEFAULT : limit;
        if (pageSize < 1 || pageSize > ENTRIES_PAGE_MAX) {
            throw ApiException.invalidField("limit", "must be between 1 and " + ENTRIES_PAGE_MAX);
        }
        return pageSize;
    }

    private static EntryPage page(List<Entry> rows, int pageSize) {
        boolean hasMore = rows.size() > pageSize;
        List<Entry> data = hasMore ? rows.subList(0, pageSize) : rows;
        String next = hasMore ? Long.toString(data.get(data.size() - 1).version()) : null;
        return new EntryPage(data, hasMore, next);
    }

    /** Instants PostgreSQL and every client can represent: years 1 to 9999. */
    private static final Instant EARLIEST = Instant.parse("0001-01-01T00:00:00Z");
    private static final Instant LATEST = Instant.parse("9999-12-31T23:59:59Z");

    private static Instant parseInstant(String text) {
        Instant instant;
        try {
            instant = OffsetDateTime.parse(text).toInstant();
        } catch (DateTimeParseException e) {
            throw ApiException.invalidField("asOf", "must be an RFC 3339 instant, such as 2026-01-31T12:00:00Z");
        }
        if (instant.isBefore(EARLIEST) || instant.isAfter(LATEST)) {
            throw ApiException.invalidField("asOf", "must be between the years 1 and 9999");
        }
        return instant;
    }

    private static <T> Mono<T> notFound(UUID id) {
        return Mono.error(() -> new ApiException(Problem.ACCOUNT_NOT_FOUND, "No account " + id));
    }
}
