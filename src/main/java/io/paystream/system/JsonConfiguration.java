package io.paystream.system;

import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.http.codec.CodecCustomizer;
import org.springframework.boot.jackson.autoconfigure.JsonMapperBuilderCustomizer;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.Ordered;
import org.springframework.core.annotation.Order;
import org.springframework.http.codec.json.JacksonJsonDecoder;
import org.springframework.util.unit.DataSize;
import tools.jackson.core.StreamReadFeature;
import tools.jackson.databind.DeserializationFeature;
import tools.jackson.databind.MapperFeature;
import tools.jackson.databind.cfg.CoercionAction;
import tools.jackson.databind.cfg.CoercionInputShape;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.type.LogicalType;

/**
 * Strict JSON for a payment API: ambiguity in a request is refused, never guessed at. An unknown
 * field may be a typo of a field that matters; a duplicate key has no agreed meaning; "100", 1e2 and
 * 100.0 are not integer amounts.
 */
@Configuration(proxyBeanMethods = false)
class JsonConfiguration {

    /** Request bodies are checked to be UTF-8 before Jackson reads them (see the decoder for why). */
    @Bean
    @Order(Ordered.LOWEST_PRECEDENCE) // after Spring Boot's own Jackson codec customizer
    CodecCustomizer utf8CheckedJson(JsonMapper json, @Value("${spring.http.codecs.max-in-memory-size}") DataSize maxBody) {
        return configurer -> {
            JacksonJsonDecoder jackson = new JacksonJsonDecoder(json);
            jackson.setMaxInMemorySize(Math.toIntExact(maxBody.toBytes()));
            configurer.defaultCodecs().jacksonJsonDecoder(new Utf8CheckingJsonDecoder(jackson));
        };
    }

    @Bean
    JsonMapperBuilderCustomizer strictJson() {
        return builder -> builder
                .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
                .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
                .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
                .disable(DeserializationFeature.ACCEPT_FLOAT_AS_INT)
                .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS)
                .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
                // "" or "  " is not "no value": a blank id or amount is a type error, never null.
                .withCoercionConfigDefaults(defaults -> defaults
                        .setCoercion(CoercionInputShape.EmptyString, CoercionAction.Fail)
                        .setAcceptBlankAsEmpty(false))
                // A number or boolean where text is expected (a metadata value, a name) is a type error.
                .withCoercionConfig(LogicalType.Textual, text -> text
                        .setCoercion(CoercionInputShape.Integer, CoercionAction.Fail)
                        .setCoercion(CoercionInputShape.Float, CoercionAction.Fail)
                        .setCoercion(CoercionInputShape.Boolean, CoercionAction.Fail));
    }
}
