package io.paystream;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;
import org.springframework.scheduling.annotation.EnableScheduling;

/** Paystream: a reactive payment API on an insert-only PostgreSQL ledger. */
@SpringBootApplication
@ConfigurationPropertiesScan
@EnableScheduling
public class PaystreamApplication {

    public static void main(String[] args) {
        SpringApplication.run(PaystreamApplication.class, args);
    }
}
