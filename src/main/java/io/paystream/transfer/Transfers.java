package io.paystream.transfer;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import io.paystream.security.Caller;
import io.paystream.system.ApiException;
import io.paystream.system.Problem;
import org.springframework.stereotype.Service;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * The units of work behind the transfer endpoints. Each runs inside {@link Ledger#run}: one
 * transaction, retried whole, guarded by its idempotency key. Each refuses before it writes.
 */
@Service
class Transfers {

    private final Ledger ledger;
    private final TransferRepository transfers;

    Transfers(Ledger ledger, TransferRepository transfers) {
        this.ledger = ledger;
        this.transfers = transfers;
    }

    /** What a transfer locks: its two accounts. */
    static Ledger.Locks locks(TransferRequest request) {
        return new Ledger.Locks(List.of(request.fromAccountId(), request.toAccountId()), null);
    }

    /** Between two user accounts of one currency, once {@link #locks} are held. */
    Mono<Transfer> transfer(TransferRequest request, Caller caller, List<Ledger.AccountRow> accounts) {
        // Refused after the claim, like every refusal about the request, so a replay is refused alike.
        return Mono.fromCallable(() -> {
                    requireDistinct(request);
                    return Ledger.Posting.of(MovementType.TRANSFER,
                        Ledger.debitAccount(request.fromAccountId(), request.currency(), accounts, caller),
                        Ledger.creditAccount(request.toAccountId(), request.currency(), accounts, caller),
                        request.amount(), request.currency(), request.description(), request.metadata());
                })
                .flatMap(ledger::post);
    }

    /** What a deposit or withdrawal locks: the account and its currency's system account. */
    static Ledger.Locks locks(UUID accountId, ExternalMovementRequest request) {
        return new Ledger.Locks(List.of(accountId), request.currency());
    }

    /**
     * From the outside world (the currency's system account) into an account, or back out, once
     * {@link #locks} are held.
     */
    Mono<Transfer> external(MovementType type, UUID accountId, ExternalMovementRequest request, Caller caller,
            List<Ledger.AccountRow> accounts) {
        return Mono.fromCallable(() -> {
                    Ledger.AccountRow account = type == MovementType.DEPOSIT
                            ? Ledger.creditAccount(accountId, request.currency(), accounts, caller)
                            : Ledger.debitAccount(accountId, request.currency(), accounts, caller);
                    Ledger.AccountRow world = Ledger.world(request.currency(), accounts);
                    return type == MovementType.DEPOSIT
                            ? Ledger.Posting.of(type, world, account, request.amount(), request.currency(),
                                    request.description(), request.metadata())
                            : Ledger.Posting.of(type, account, world, request.amount(), request.currency(),
                                    request.description(), request.metadata());
                })
                .flatMap(ledger::post);
    }

    /**
     * Sends money back along a transfer's path. All reversals of one transfer never exceed it: the
     * sum so far is read after both accounts are locked, and the database checks it again.
     */
    Mono<Transfer> reverse(UUID transferId, ReversalRequest request, Caller caller) {
        return transfers.find(transferId, caller)
                .switchIfEmpty(Mono.error(() -> new ApiException(Problem.TRANSFER_NOT_FOUND, "No transfer " + transferId)))
                .flatMap(original -> {
                    if (!MovementType.TRANSFER.sql().equals(original.type())) {
                        return Mono.error(new ApiException(Problem.NOT_REVERSIBLE,
                                "Only transfers can be reversed; this is a " + original.type()));
                    }
                    return ledger.lockAccounts(List.of(original.fromAccountId(), original.toAccountId()), null)
                            .zipWith(transfers.reversedSoFar(transferId))
                            .map(locked -> reversal(original, request, locked.getT1(), locked.getT2(), caller));
                })
                .flatMap(ledger::post);
    }

    private static Ledger.Posting reversal(Transfer original, ReversalRequest request, List<Ledger.AccountRow> accounts,
            long reversedSoFar, Caller caller) {
        long remaining = original.amount() - reversedSoFar;
        long amount = request.amount() == null ? remaining : request.amount();
        if (remaining == 0 || amount > remaining) {
            throw new ApiException(Problem.REVERSAL_EXCEEDS_ORIGINAL, "Transfer " + original.id() + " has "
                    + remaining + " left to reverse; " + amount + " asked");
        }
        // A reversal debits the original's payee: only its owner (or an admin) may send money back.
        return new Ledger.Posting(MovementType.REVERSAL,
                Ledger.debitAccount(original.toAccountId(), original.currency(), accounts, caller),
                Ledger.creditAccount(original.fromAccountId(), original.currency(), accounts, caller),
                amount, original.currency(), "Reversal of " + original.id(), Map.of(), 0, null, original.id());
    }

    /**
     * All or nothing, in one transaction (run with {@link Ledger#runLocked}). The row locks of every
     * account in the batch are taken in one statement, in one global ascending order, in both modes,
     * so concurrent overlapping batches queue instead of deadlocking. The batch is checked in full against the locked heads before anything is written,
     * so a refusal names its item and leaves nothing behind.
     */
    Mono<BatchResult> batch(BatchRequest request, Caller caller) {
        List<TransferRequest> items = request.transfers();
        LinkedHashSet<UUID> ids = new LinkedHashSet<>();
        for (int i = 0; i < items.size(); i++) {
            try {
                requireDistinct(items.get(i));
            } catch (ApiException refusal) {
                return Mono.error(refusal.forItem(i));
            }
            ids.add(items.get(i).fromAccountId());
            ids.add(items.get(i).toAccountId());
        }
        List<UUID> accountIds = List.copyOf(ids);
        return ledger.lockAccountsAlways(accountIds)
                .map(accounts -> postings(items, accounts, caller))
                .flatMap(postings -> transfers.heads(accountIds).doOnNext(heads -> check(postings, heads))
                        .thenMany(Flux.fromIterable(postings).concatMap(ledger::post)
                                // Checked in full above, the postings cannot be refused; if one is, the
                                // check and the database disagree: fail the whole batch (rolled back)
                                // rather than store a refusal after some of it was written.
                                .onErrorMap(ApiException.class, e -> new IllegalStateException(
                                        "batch posting refused after its check passed: " + e.problem().code(), e)))
                        .collectList())
                .map(BatchResult::new);
    }

    private static List<Ledger.Posting> postings(List<TransferRequest> items, List<Ledger.AccountRow> accounts,
            Caller caller) {
        List<Ledger.Posting> postings = new ArrayList<>(items.size());
        for (int i = 0; i < items.size(); i++) {
            TransferRequest item = items.get(i);
            try {
                postings.add(Ledger.Posting.of(MovementType.TRANSFER,
                        Ledger.debitAccount(item.fromAccountId(), item.currency(), accounts, caller),
                        Ledger.creditAccount(item.toAccountId(), item.currency(), accounts, caller),
                        item.amount(), item.currency(), item.description(), item.metadata()));
            } catch (ApiException refusal) {
                throw refusal.forItem(i);
            }
        }
        return postings;
    }

    /** Plays the batch forward on the locked heads, in order, as the postings will. */
    private static void check(List<Ledger.Posting> postings, List<TransferRepository.Head> heads) {
        Map<UUID, long[]> state = new HashMap<>(); // account -> {balance, held}
        heads.forEach(h -> state.put(h.accountId(), new long[] {h.balance(), h.held()}));
        for (int i = 0; i < postings.size(); i++) {
            Ledger.Posting posting = postings.get(i);
            long[] debit = state.get(posting.debit().id());
            long[] credit = state.get(posting.credit().id());
            try {
                check(posting.debit(), debit[0], debit[1], credit[0], posting.amount());
            } catch (ApiException refusal) {
                throw refusal.forItem(i);
            }
            debit[0] -= posting.amount();
            credit[0] += posting.amount();
        }
    }

    /**
     * What CHECK_AND_POST's verdict decides in the database, for units that decide in Java on heads
     * they locked (batches, groups): the debit's available funds ({@code balance - held}), unless it may
     * go negative, and both balances within {@link Ledger#MAX_BALANCE_MAGNITUDE} afterwards.
     */
    static void check(Ledger.AccountRow debit, long debitBalance, long debitHeld, long creditBalance, long amount) {
        if (!debit.allowNegative() && debitBalance - debitHeld < amount) {
            throw Ledger.insufficientFunds(debit.id(), amount);
        }
        if (Math.abs(debitBalance - amount) > Ledger.MAX_BALANCE_MAGNITUDE
                || Math.abs(creditBalance + amount) > Ledger.MAX_BALANCE_MAGNITUDE) {
            throw new ApiException(Problem.BALANCE_LIMIT_EXCEEDED,
                    "This movement would take a balance beyond " + Ledger.MAX_BALANCE_MAGNITUDE + " minor units");
        }
    }

    static void requireDistinct(TransferRequest request) {
        if (request.fromAccountId().equals(request.toAccountId())) {
            throw new ApiException(Problem.SAME_ACCOUNT, "A transfer needs two different accounts");
        }
    }
}
