package io.paystream.testsupport;

import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Coordinates of a PostgreSQL server on which the test support may create and drop databases.
 *
 * @param hostAndPort {@code host:port} as it appears in URLs
 * @param adminDatabase an existing database to connect to for CREATE/DROP DATABASE
 * @param jdbcParameters extra JDBC URL parameters (without user and password), possibly empty
 */
record DatabaseServer(String hostAndPort, String adminDatabase, String username, String password, String jdbcParameters) {

    private static final String JDBC_PREFIX = "jdbc:postgresql://";

    String jdbcUrl(String database) {
        return JDBC_PREFIX + hostAndPort + "/" + database + (jdbcParameters.isEmpty() ? "" : "?" + jdbcParameters);
    }

    String r2dbcUrl(String database) {
        return "r2dbc:postgresql://" + hostAndPort + "/" + database;
    }

    /**
     * Parses {@code jdbc:postgresql://host[:port][/database][?user=u&password=p&...]}. User and password move
     * out of the URL; other parameters stay on the JDBC URLs (the R2DBC URL carries none).
     */
    static DatabaseServer fromJdbcUrl(String jdbcUrl) {
        if (!jdbcUrl.startsWith(JDBC_PREFIX)) {
            throw new IllegalArgumentException("Expected a URL like jdbc:postgresql://host:5432/postgres?user=u&password=p, got: "
                    + jdbcUrl.replaceAll("password=[^&]*", "password=***"));
        }
        String rest = jdbcUrl.substring(JDBC_PREFIX.length());
        String query = "";
        int questionMark = rest.indexOf('?');
        if (questionMark >= 0) {
            query = rest.substring(questionMark + 1);
            rest = rest.substring(0, questionMark);
        }
        int slash = rest.indexOf('/');
        String hostAndPort = slash >= 0 ? rest.substring(0, slash) : rest;
        String database = slash >= 0 ? rest.substring(slash + 1) : "";
        String username = "postgres";
        String password = "";
        List<String> otherParameters = new ArrayList<>();
        for (String parameter : query.split("&")) {
            if (parameter.isEmpty()) {
                continue;
            }
            int equals = parameter.indexOf('=');
            String name = equals >= 0 ? parameter.substring(0, equals) : parameter;
            String value = equals >= 0 ? URLDecoder.decode(parameter.substring(equals + 1), StandardCharsets.UTF_8) : "";
            switch (name) {
                case "user" -> username = value;
                case "password" -> password = value;
                default -> otherParameters.add(parameter);
            }
        }
        return new DatabaseServer(hostAndPort, database.isEmpty() ? "postgres" : database, username, password,
                String.join("&", otherParameters));
    }

    @Override
    public String toString() {
        return "DatabaseServer[" + hostAndPort + "/" + adminDatabase + " as " + username + "]";
    }
}
