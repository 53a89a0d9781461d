package io.paystream.account;

import java.util.List;

/**
 * A page of entries, newest first. {@code nextCursor} goes into {@code after} to read the next page;
 * it is null on the last page.
 */
record EntryPage(List<Entry> data, boolean hasMore, String nextCursor) {
}
