package io.paystream.audit;

import java.util.Map;

/** One response of a concurrent burst: status, parsed JSON body, and whether it was a replay. */
public record HttpResult(int status, Map<String, Object> body, boolean replayed) {

    public String code() {
        return body == null ? null : (String) body.get("code");
    }

    public boolean is2xx() {
        return status >= 200 && status < 300;
    }
}
