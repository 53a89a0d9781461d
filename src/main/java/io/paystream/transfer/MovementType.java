package io.paystream.transfer;

/** What a transaction row records. Deposits and withdrawals move money to or from the outside world. */
enum MovementType {
    TRANSFER,
    DEPOSIT,
    WITHDRAWAL,
    REVERSAL;

    String sql() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
