package io.paystream.stream;

import java.time.Duration;

import io.r2dbc.postgresql.api.PostgresqlConnection;
import io.r2dbc.spi.Connection;
import io.r2dbc.spi.ConnectionFactory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.r2dbc.autoconfigure.R2dbcProperties;
import org.springframework.context.SmartLifecycle;
import org.springframework.stereotype.Component;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.util.retry.Retry;

/**
 * One dedicated connection per replica, outside the pool, that LISTENs for balance changes and wakes
 * the watchers. When the connection is lost (database restart, {@code pg_terminate_backend}, network)
 * it reconnects with backoff, LISTENs again and wakes every watcher, which then reads from the ledger
 * whatever it missed meanwhile. Notifications are hints; the ledger is the truth.
 */
@Component
class BalanceListener implements SmartLifecycle {

    private static final Logger log = LoggerFactory.getLogger(BalanceListener.class);

    static final String CHANNEL = "paystream_balances";
    static final String APPLICATION_NAME = "paystream-listener";
    /** Reconnect backoff: quick first, never slower than this between tries. */
    private static final Duration FIRST_BACKOFF = Duration.ofMillis(100);
    private static final Duration MAX_BACKOFF = Duration.ofSeconds(5);

    private final ConnectionFactory connections;
    private final BalanceHub hub;
    private volatile Disposable subscription;

    BalanceListener(R2dbcProperties properties, BalanceHub hub) {
        this.hub = hub;
        this.connections = StreamConnections.factory(properties, APPLICATION_NAME);
    }

    @Override
    public void start() {
        subscription = Flux.usingWhen(connections.create(), this::listen, Connection::close)
                // The notification stream ends when the connection does: that is a failure to recover from.
                .concatWith(Mono.error(() -> new IllegalStateException("listener connection closed")))
                .retryWhen(Retry.backoff(Long.MAX_VALUE, FIRST_BACKOFF).maxBackoff(MAX_BACKOFF)
                        .doBeforeRetry(signal -> log.warn("Balance listener lost its connection ({}); reconnecting",
                                signal.failure().toString())))
                .subscribe(notification -> hub.onNotification(notification.getParameter()),
                        error -> log.error("Balance listener stopped", error));
    }

    private Flux<io.r2dbc.postgresql.api.Notification> listen(Connection connection) {
        PostgresqlConnection postgres = (PostgresqlConnection) connection;
        return postgres.createStatement("LISTEN " + CHANNEL).execute()
                .flatMap(result -> result.getRowsUpdated())
                .thenMany(Flux.defer(() -> postgres.getNotifications()
                        .doOnSubscribe(subscribed -> {
                            log.info("Balance listener is listening");
                            // Subscribed now, so no notification is missed from here on; anything
                            // committed while we were not listening: every watcher catches up.
                            hub.wakeAll();
                        })));
    }

    @Override
    public void stop() {
        Disposable current = subscription;
        if (current != null) {
            current.dispose();
        }
        subscription = null;
    }

    @Override
    public boolean isRunning() {
        return subscription != null;
    }
}
