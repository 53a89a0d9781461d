package io.paystream.account;

import java.util.List;

/** A page of accounts in id order; {@code nextCursor} goes into {@code after}; null on the last page. */
record AccountPage(List<Account> data, boolean hasMore, String nextCursor) {
}
