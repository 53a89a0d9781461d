package io.paystream.transfer;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.scheduling.annotation.Scheduled;
import org.springframework.stereotype.Component;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Expires holds past their {@code expiresAt}, releasing what they held. Safe with any number of
 * replicas: each hold is taken with {@code FOR NO KEY UPDATE SKIP LOCKED}, one hold per transaction,
 * so sweepers and captures never wait on each other, and at most {@code batch} holds per run keep a
 * run short.
 */
@Component
class HoldExpirySweeper {

    private static final Logger log = LoggerFactory.getLogger(HoldExpirySweeper.class);

    private final Holds holds;
    private final LedgerMetrics metrics;
    private final int batch;

    HoldExpirySweeper(Holds holds, LedgerMetrics metrics, @Value("${paystream.holds.sweep-batch}") int batch) {
        this.holds = holds;
        this.metrics = metrics;
        this.batch = batch;
    }

    @Scheduled(fixedDelayString = "${paystream.holds.sweep-interval}", initialDelayString = "${paystream.holds.sweep-interval}")
    Mono<Long> sweep() {
        return Flux.range(0, batch)
                .concatMap(i -> holds.expireNext())
                .takeUntil(expired -> !expired)
                .filter(expired -> expired)
                .doOnNext(expired -> metrics.expiry(true, null))
                .count()
                .doOnNext(count -> {
                    if (count > 0) {
                        log.info("Expired {} holds", count);
                    }
                })
                .onErrorResume(error -> {
                    metrics.expiry(false, error);
                    log.warn("Hold expiry sweep failed; the next run tries again: {}", error.toString());
                    return Mono.empty();
                });
    }
}
