package io.paystream.transfer;

import java.util.List;

/** The transfers of an applied batch, in request order. */
record BatchResult(List<Transfer> transfers) {
}
