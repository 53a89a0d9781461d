package io.paystream.testsupport;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.Properties;

/** Plain JDBC connections with bounded waits, for administration statements outside any Spring context. */
final class Jdbc {

    /** A server that does not answer within this many seconds is treated as down. */
    static final int CONNECT_TIMEOUT_SECONDS = 5;

    /** CREATE DATABASE on a busy CI machine can take a while, but never this long. */
    static final int STATEMENT_TIMEOUT_SECONDS = 120;

    private Jdbc() {
    }

    static Connection connect(String jdbcUrl, String username, String password) throws SQLException {
        Properties properties = new Properties();
        properties.setProperty("user", username);
        if (password != null) {
            properties.setProperty("password", password);
        }
        properties.setProperty("connectTimeout", Integer.toString(CONNECT_TIMEOUT_SECONDS));
        properties.setProperty("loginTimeout", Integer.toString(CONNECT_TIMEOUT_SECONDS));
        properties.setProperty("socketTimeout", Integer.toString(STATEMENT_TIMEOUT_SECONDS));
        properties.setProperty("ApplicationName", "paystream-testsupport");
        return DriverManager.getConnection(jdbcUrl, properties);
    }
}
