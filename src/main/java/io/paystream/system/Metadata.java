package io.paystream.system;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import java.nio.charset.StandardCharsets;
import java.util.Map;

import jakarta.validation.Constraint;
import jakarta.validation.ConstraintValidator;
import jakarta.validation.ConstraintValidatorContext;
import jakarta.validation.Payload;

/**
 * Metadata a client attaches to an account or a movement: a flat JSON object of string values, as in
 * the best-known payment APIs. Small and predictable on purpose: at most {@value #MAX_KEYS} keys of at
 * most {@value #MAX_KEY_CHARS} characters, values of at most {@value #MAX_VALUE_CHARS} characters, and
 * {@value #MAX_BYTES} bytes of UTF-8 in all. The database caps the stored form again (8 KiB).
 */
@Documented
@Constraint(validatedBy = Metadata.Validator.class)
@Target({ElementType.FIELD, ElementType.PARAMETER, ElementType.RECORD_COMPONENT})
@Retention(RetentionPolicy.RUNTIME)
public @interface Metadata {

    int MAX_KEYS = 20;
    int MAX_KEY_CHARS = 40;
    int MAX_VALUE_CHARS = 500;
    int MAX_BYTES = 4096;

    String message() default "must be an object of at most 20 string values (keys up to 40 characters,"
            + " values up to 500, 4096 bytes in all), without control characters";

    Class<?>[] groups() default {};

    Class<? extends Payload>[] payload() default {};

    class Validator implements ConstraintValidator<Metadata, Map<String, String>> {

        @Override
        public boolean isValid(Map<String, String> value, ConstraintValidatorContext context) {
            if (value == null) {
                return true;
            }
            if (value.size() > MAX_KEYS) {
                return false;
            }
            int bytes = 2;
            for (Map.Entry<String, String> entry : value.entrySet()) {
                String key = entry.getKey();
                String text = entry.getValue();
                if (key == null || key.isEmpty() || key.length() > MAX_KEY_CHARS || !PlainText.Validator.isPlain(key)
                        || text == null || text.length() > MAX_VALUE_CHARS || !PlainText.Validator.isPlain(text)) {
                    return false;
                }
                bytes += key.getBytes(StandardCharsets.UTF_8).length + text.getBytes(StandardCharsets.UTF_8).length + 6;
            }
            return bytes <= MAX_BYTES;
        }
    }
}
