"""The event-sourced credit ledger (CQRS): domain, event store, projections, operator glue and HTTP API."""
