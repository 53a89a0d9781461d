package io.paystream.system;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import java.util.Map;

import jakarta.validation.Constraint;
import jakarta.validation.ConstraintValidator;
import jakarta.validation.ConstraintValidatorContext;
import jakarta.validation.Payload;

/**
 * Metadata a client attaches to an account or a movement: a flat JSON object of string values, as in
 * the best-known payment APIs. Small and predictable on purpose: at most {@value #MAX_KEYS} keys of at
 * most {@value #MAX_KEY_CHARS} characters, values of at most {@value #MAX_VALUE_CHARS} characters, and
 * {@value #MAX_BYTES} bytes as stored (jsonb's printed form). The database caps the stored form again,
 * at twice that, so the two checks can never disagree on a valid request.
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
            int bytes = 2; // {}
            for (Map.Entry<String, String> entry : value.entrySet()) {
                String key = entry.getKey();
                String text = entry.getValue();
                if (key == null || key.isEmpty() || key.length() > MAX_KEY_CHARS || !PlainText.Validator.isPlain(key)
                        || text == null || text.length() > MAX_VALUE_CHARS || !PlainText.Validator.isPlain(text)) {
                    return false;
                }
                // "key": "value", as PostgreSQL prints jsonb: quotes, colon, comma and their spaces.
                bytes += jsonStringBytes(key) + jsonStringBytes(text) + 6;
            }
            return bytes <= MAX_BYTES;
        }

        /** Bytes of a JSON string literal's content as printed: UTF-8, with escapes counted in full. */
        static int jsonStringBytes(String text) {
            int bytes = 0;
            for (int i = 0; i < text.length(); i++) {
                char c = text.charAt(i);
                if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') {
                    bytes += 2;
                } else if (c < 0x20) {
                    bytes += 6;
                } else if (c < 0x80) {
                    bytes += 1;
                } else if (c < 0x800) {
                    bytes += 2;
                } else if (Character.isHighSurrogate(c)) {
                    bytes += 4;
                    i++;
                } else {
                    bytes += 3;
                }
            }
            return bytes;
        }
    }
}
