package io.paystream.transfer;

import java.util.List;

import jakarta.validation.Valid;
import jakarta.validation.constraints.NotEmpty;
import jakarta.validation.constraints.NotNull;
import jakarta.validation.constraints.Size;

/** {@code POST /v1/transfer-batches}: up to {@value #MAX_TRANSFERS} transfers, all or nothing. */
record BatchRequest(@NotEmpty @Size(max = MAX_TRANSFERS) List<@NotNull @Valid TransferRequest> transfers) {

    /** One transaction holds every row lock of the batch: bounded so it stays short. */
    static final int MAX_TRANSFERS = 100;
}
