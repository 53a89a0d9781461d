package io.paystream.idempotency;

import org.springframework.stereotype.Component;
import reactor.core.publisher.Mono;

/** Lets tests in other packages run one purge on demand (the purger itself stays package-private). */
@Component
public class IdempotencyKeyPurgerAccess {

    private final IdempotencyKeyPurger purger;

    IdempotencyKeyPurgerAccess(IdempotencyKeyPurger purger) {
        this.purger = purger;
    }

    public Mono<Long> purgeOnce() {
        return purger.purgeOnce();
    }
}
