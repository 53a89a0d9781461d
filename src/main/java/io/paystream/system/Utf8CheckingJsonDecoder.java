package io.paystream.system;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

import org.jspecify.annotations.Nullable;
import org.reactivestreams.Publisher;
import org.springframework.core.ResolvableType;
import org.springframework.core.codec.Decoder;
import org.springframework.core.codec.DecodingException;
import org.springframework.core.io.buffer.DataBuffer;
import org.springframework.core.io.buffer.DataBufferUtils;
import org.springframework.http.codec.json.JacksonJsonDecoder;
import org.springframework.util.MimeType;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * The JSON decoder, behind a check that the body is UTF-8. Jackson's byte parser matches a property
 * name against the names it has seen before, and a name holding an invalid byte was taken for one of
 * them: {@code {"amou\xFFnt":1}} read as {@code {"amount":1}} once "amount" had been seen, so a
 * corrupted body moved money. Invalid UTF-8 anywhere is now a malformed body (400), before Jackson
 * reads it. The body is joined first, bounded by the Jackson decoder's own in-memory limit.
 */
final class Utf8CheckingJsonDecoder implements Decoder<Object> {

    /** The refusal, told apart from Jackson's own errors: always malformed_json. */
    static final class InvalidUtf8Exception extends DecodingException {
        InvalidUtf8Exception() {
            super("The request body is not valid UTF-8");
        }
    }

    private final JacksonJsonDecoder jackson;

    Utf8CheckingJsonDecoder(JacksonJsonDecoder jackson) {
        this.jackson = jackson;
    }

    @Override
    public boolean canDecode(ResolvableType elementType, @Nullable MimeType mimeType) {
        return jackson.canDecode(elementType, mimeType);
    }

    @Override
    public List<MimeType> getDecodableMimeTypes() {
        return jackson.getDecodableMimeTypes();
    }

    @Override
    public List<MimeType> getDecodableMimeTypes(ResolvableType targetType) {
        return jackson.getDecodableMimeTypes(targetType);
    }

    @Override
    public Flux<Object> decode(Publisher<DataBuffer> input, ResolvableType elementType, @Nullable MimeType mimeType,
            @Nullable Map<String, Object> hints) {
        return jackson.decode(joined(input), elementType, mimeType, hints);
    }

    @Override
    public Mono<Object> decodeToMono(Publisher<DataBuffer> input, ResolvableType elementType, @Nullable MimeType mimeType,
            @Nullable Map<String, Object> hints) {
        return jackson.decodeToMono(joined(input), elementType, mimeType, hints);
    }

    @Override
    public @Nullable Object decode(DataBuffer buffer, ResolvableType targetType, @Nullable MimeType mimeType,
            @Nullable Map<String, Object> hints) throws DecodingException {
        return jackson.decode(checked(buffer), targetType, mimeType, hints);
    }

    private Mono<DataBuffer> joined(Publisher<DataBuffer> input) {
        return DataBufferUtils.join(input, jackson.getMaxInMemorySize()).map(Utf8CheckingJsonDecoder::checked);
    }

    private static DataBuffer checked(DataBuffer buffer) {
        int length = buffer.readableByteCount();
        ByteBuffer bytes = ByteBuffer.allocate(length);
        buffer.toByteBuffer(buffer.readPosition(), bytes, 0, length);
        try {
            StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(bytes);
            return buffer;
        } catch (CharacterCodingException invalid) {
            DataBufferUtils.release(buffer);
            throw new InvalidUtf8Exception();
        }
    }
}
