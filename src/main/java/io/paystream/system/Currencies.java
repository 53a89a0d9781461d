package io.paystream.system;

import java.util.Currency;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * ISO 4217 codes of money, as the JDK knows them. Codes without minor units (XXX "no currency", XAU
 * gold, XDR, test codes: fraction digits -1) are not money an account can hold.
 */
public final class Currencies {

    private static final Set<String> CODES = Currency.getAvailableCurrencies().stream()
            .filter(currency -> currency.getDefaultFractionDigits() >= 0)
            .map(Currency::getCurrencyCode)
            .collect(Collectors.toUnmodifiableSet());

    private Currencies() {
    }

    public static boolean isIso4217(String code) {
        return code != null && CODES.contains(code);
    }
}
