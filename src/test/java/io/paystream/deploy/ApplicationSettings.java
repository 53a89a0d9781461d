package io.paystream.deploy;

import java.io.IOException;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What application.properties says about the environment: every variable it reads (each {@code ${VAR}}
 * placeholder, nested ones too) and each variable's default where it has a plain one.
 */
record ApplicationSettings(Properties properties, Set<String> variables, Map<String, String> defaults) {

    static final Path FILE = Path.of("src/main/resources/application.properties");

    private static final Pattern VARIABLE = Pattern.compile("\\$\\{([A-Z][A-Z0-9_]*)");

    private static final Pattern PLAIN_DEFAULT = Pattern.compile("\\$\\{([A-Z][A-Z0-9_]*):([^${}]*)}");

    static ApplicationSettings load() {
        Properties properties = new Properties();
        try (Reader reader = Files.newBufferedReader(FILE)) {
            properties.load(reader);
        }
        catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        Set<String> variables = new LinkedHashSet<>();
        Map<String, String> defaults = new LinkedHashMap<>();
        for (String name : properties.stringPropertyNames()) {
            String value = properties.getProperty(name);
            Matcher variable = VARIABLE.matcher(value);
            while (variable.find()) {
                variables.add(variable.group(1));
            }
            Matcher plain = PLAIN_DEFAULT.matcher(value);
            while (plain.find()) {
                defaults.putIfAbsent(plain.group(1), plain.group(2));
            }
        }
        return new ApplicationSettings(properties, Set.copyOf(variables), Map.copyOf(defaults));
    }

    /** The variable a property is read from, e.g. {@code server.port} -> {@code SERVER_PORT}. */
    String variableOf(String property) {
        String value = properties.getProperty(property);
        if (value == null) {
            throw new IllegalStateException(FILE + " has no " + property);
        }
        Matcher m = VARIABLE.matcher(value);
        if (!m.lookingAt()) {
            throw new IllegalStateException(property + " in " + FILE + " is not read from an environment variable");
        }
        return m.group(1);
    }
}
