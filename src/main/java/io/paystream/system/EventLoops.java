package io.paystream.system;

import java.util.concurrent.Executor;

import org.springframework.http.server.reactive.ServerHttpRequest;
import org.springframework.http.server.reactive.ServerHttpRequestDecorator;
import reactor.core.scheduler.Schedulers;
import reactor.netty.Connection;

/** Where work for one HTTP connection is best done: on that connection's own event loop. */
public final class EventLoops {

    /** Reactor's parallel workers: for requests that come through no Reactor Netty connection. */
    public static final Executor PARALLEL = task -> Schedulers.parallel().schedule(task);

    private EventLoops() {
    }

    /**
     * The event loop of the request's connection: what is written to the connection from there goes
     * to the socket at once, rather than being handed over to that loop as a task of its own. Reactor's
     * parallel workers when the server is not Reactor Netty.
     */
    public static Executor of(ServerHttpRequest request) {
        try {
            Object nativeRequest = ServerHttpRequestDecorator.getNativeRequest(request);
            if (nativeRequest instanceof Connection connection) {
                return connection.channel().eventLoop();
            }
        } catch (IllegalArgumentException notReactorNetty) {
            // A request that wraps no native one (a mock): the parallel workers.
        }
        return PARALLEL;
    }
}
