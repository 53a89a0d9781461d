package io.paystream.audit;

import java.util.Map;

/** One response of a concurrent burst: status and parsed JSON body. */
public record HttpResult(int status, Map<String, Object> body) {

    public String code() {
        return body == null ? null : (String) body.get("code");
    }

    public boolean is2xx() {
        return status >= 200 && status < 300;
    }
}
