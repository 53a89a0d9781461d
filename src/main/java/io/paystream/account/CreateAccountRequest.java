package io.paystream.account;

import java.util.Map;

import io.paystream.system.Iso4217;
import io.paystream.system.Metadata;
import io.paystream.system.PlainText;
import jakarta.validation.constraints.NotBlank;
import jakarta.validation.constraints.NotNull;
import jakarta.validation.constraints.Size;

/** What a client may set on a new account; nothing else (id, kind, balance) is accepted. */
record CreateAccountRequest(
        @NotNull @Iso4217 String currency,
        @NotBlank @Size(max = 200) @PlainText String name,
        @Metadata Map<String, String> metadata) {
}
