package io.paystream.transfer;

import org.springframework.test.context.TestPropertySource;

@TestPropertySource(properties = "paystream.ledger.concurrency-mode=optimistic")
class OptimisticLifecycleIntegrationTests extends LifecycleConcurrencyIntegrationTests {
}
