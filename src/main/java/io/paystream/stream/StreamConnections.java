package io.paystream.stream;

import io.r2dbc.spi.ConnectionFactories;
import io.r2dbc.spi.ConnectionFactory;
import io.r2dbc.spi.ConnectionFactoryOptions;
import io.r2dbc.spi.Option;
import org.springframework.boot.r2dbc.autoconfigure.R2dbcProperties;

/**
 * Connections the streams open themselves, outside the application's pool (the LISTEN connection, the
 * streams' own pool): the same database and credentials, under their own application name, so that
 * {@code pg_stat_activity} tells them apart.
 */
final class StreamConnections {

    private StreamConnections() {
    }

    static ConnectionFactory factory(R2dbcProperties properties, String applicationName) {
        ConnectionFactoryOptions.Builder options = ConnectionFactoryOptions.parse(properties.getUrl()).mutate()
                .option(Option.valueOf("applicationName"), applicationName);
        if (properties.getUsername() != null && !properties.getUsername().isEmpty()) {
            options.option(ConnectionFactoryOptions.USER, properties.getUsername());
        }
        if (properties.getPassword() != null && !properties.getPassword().isEmpty()) {
            options.option(ConnectionFactoryOptions.PASSWORD, properties.getPassword());
        }
        return ConnectionFactories.get(options.build());
    }
}
